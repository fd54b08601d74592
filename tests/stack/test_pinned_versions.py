"""The Prometheus and Alertmanager the tests run are the versions docker-compose.yml pins.

scripts/test builds them with scripts/build-pinned and points PINNED_BIN_DIR at them; without Go
the tests run whatever is installed (Debian's 2.42 and 0.25), and these checks are skipped, except
under CI=true, where the pinned builds are required.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_binary
from tests.procs import REPO

pytestmark = pytest.mark.integration

# binary -> the image in docker-compose.yml that runs it
IMAGES = {"prometheus": "prom/prometheus", "promtool": "prom/prometheus",
          "alertmanager": "prom/alertmanager", "amtool": "prom/alertmanager"}
# also checked when the folder has them (the compose end-to-end test builds them)
OPTIONAL = {"node_exporter": "prom/node-exporter"}


def pinned_tag(image: str) -> str:
    """The tag docker-compose.yml gives ``image``: the one every service using it agrees on."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    tags = {service["image"].removeprefix(f"{image}:") for service in services.values()
            if service.get("image", "").startswith(f"{image}:")}
    assert len(tags) == 1, f"{image}: tags {tags} in docker-compose.yml"
    return tags.pop()


def pinned_bin_dir() -> Path:
    bin_dir = os.environ.get("PINNED_BIN_DIR")
    if not bin_dir:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true needs the pinned builds, and PINNED_BIN_DIR is not set (scripts/test sets it with Go)")
        pytest.skip("PINNED_BIN_DIR is not set: the tests run the installed versions (scripts/test sets it with Go)")
    return Path(bin_dir)


def reported_version(path: str) -> str:
    """What ``NAME --version`` says, e.g. "prometheus, version 3.13.2 (branch: HEAD, ...)"."""
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.parametrize("name", IMAGES)
def test_the_tests_run_the_pinned_version(name):
    bin_dir = pinned_bin_dir()
    path = require_binary(name)
    assert Path(path).parent == bin_dir, f"{name}: the tests would run {path}, not the pinned build in {bin_dir}"
    version = pinned_tag(IMAGES[name]).removeprefix("v")
    text = reported_version(path)
    assert re.search(rf"^{name}, version {re.escape(version)} ", text, re.MULTILINE), text


@pytest.mark.parametrize("name", OPTIONAL)
def test_optional_pinned_builds_are_the_pinned_version(name):
    path = pinned_bin_dir() / name
    if not path.exists():
        pytest.skip(f"{name} is not in PINNED_BIN_DIR")
    version = pinned_tag(OPTIONAL[name]).removeprefix("v")
    text = reported_version(str(path))
    assert re.search(rf"^{name}, version {re.escape(version)} ", text, re.MULTILINE), text
