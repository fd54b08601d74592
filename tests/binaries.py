"""Where the tests find the real Prometheus-ecosystem programs they start.

One lookup for every test, so that all of them run the same programs: first the folder
``PINNED_BIN_DIR`` (scripts/test points it at the builds of the versions docker-compose.yml pins,
made by scripts/build-pinned), then ``PATH`` under the upstream name, then the name Debian's
packages give the program (Debian's Alertmanager is ``prometheus-alertmanager``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# upstream name -> the name Debian installs it under
DEBIAN_NAMES = {"alertmanager": "prometheus-alertmanager", "node_exporter": "prometheus-node-exporter"}


def binary(name: str) -> str | None:
    """The path of the program called ``name`` upstream (prometheus, promtool, alertmanager, amtool,
    node_exporter), or None when it is nowhere to be found."""
    bin_dir = os.environ.get("PINNED_BIN_DIR")
    if bin_dir:
        pinned = Path(bin_dir) / name
        if pinned.is_file() and os.access(pinned, os.X_OK):
            return str(pinned)
    return shutil.which(name) or (shutil.which(DEBIAN_NAMES[name]) if name in DEBIAN_NAMES else None)
