"""End-to-end tests need root, a Docker engine's programs (Debian's docker.io), slirp4netns,
debootstrap and Go; without them they are skipped, or fail when CI=true."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e import engine


def e2e_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a private dockerd in its own namespaces)"
    missing = engine.missing_tools() + [tool for tool in ("go", "debootstrap", "docker", "busybox")
                                        if not shutil.which(tool)]
    if missing:
        return f"not installed: {', '.join(missing)} (./scripts/test installs them as root)"
    return None


@pytest.fixture(scope="session")
def e2e_ready():
    reason = e2e_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the end-to-end test cannot run: {reason}")
        pytest.skip(reason)
