"""Shared test helpers: golden-file comparison and real binaries that must exist in CI."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis times each example (200 ms) and its data generation: on a loaded machine either fails
# a correct test, so properties here are judged on their results only.
settings.register_profile("llmwatch", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("llmwatch")

from tests.binaries import binary

DURATION = re.compile(r"^(llmwatch_\w+_duration_seconds(?:\{[^}]*\})?) \S+$", re.MULTILINE)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from the current output")


def normalise(text: str) -> str:
    """Durations vary with the machine; everything else in an exposition must be exact."""
    return DURATION.sub(r"\1 <duration>", text)


def pytest_collection_modifyitems(items):
    """A test that uses the real PostgreSQL server is an integration test, wherever it lives."""
    for item in items:
        if "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def golden(request):
    """``golden(path, text)``: compare with the file, or write it under --update-golden."""

    def check(path: Path, text: str) -> None:
        text = normalise(text)
        if request.config.getoption("--update-golden"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        elif not path.exists():  # never written silently: a new golden file is reviewed like any change
            pytest.fail(f"golden file missing: {path}; create it with ./scripts/test --update-golden and review it")
        assert text == path.read_text(), f"exposition differs from {path}; run pytest --update-golden and review the diff"

    return check


def require_binary(name: str) -> str:
    """The path of a real binary by its upstream name (promtool, alertmanager...; see tests/binaries.py);
    under CI=true a missing one fails the test."""
    path = binary(name)
    if path:
        return path
    message = f"{name} not found (scripts/test builds the pinned version with Go, or installs Debian's as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (Debian's binaries); skipped, or failed under CI=true, without."""
    from tests.fakes.postgres import postgres_bin, shared

    if postgres_bin() is None:
        message = "postgresql not installed (scripts/test installs it as root with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return shared()
