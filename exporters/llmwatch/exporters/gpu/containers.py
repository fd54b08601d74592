"""Which container a GPU process belongs to: pid -> /proc/<pid>/cgroup -> container id -> name.

NVML reports host pids, so the exporter runs in the host pid namespace (compose: ``pid: host``)
and reads the host's /proc. Names come from the Docker Engine API (through the read-only socket
proxy) and are cached, since a scrape must not ask Docker once per process.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from llmwatch.core.cache import ExpiringMap
from llmwatch.core.logs import WarnOnce

log = logging.getLogger(__name__)

HOST = "host"  # processes outside any container
UNKNOWN = "unknown"  # the pid is not visible here (exporter not in the host pid namespace)

# cgroup v2 + systemd driver: .../docker-<id>.scope; cgroupfs driver: /docker/<id>;
# also containerd/CRI-O scopes and Kubernetes pods, which name the same 64-hex id.
_CONTAINER_ID = re.compile(r"(?:docker|cri-containerd|crio|libpod)[-/]([0-9a-f]{64})(?:\.scope)?(?:/|$)")
_BARE_ID = re.compile(r"/([0-9a-f]{64})(?:/|$)")


def container_id_from_cgroup(text: str) -> str | None:
    """The container id in a /proc/<pid>/cgroup file, or None for a host process.

    Lines are ``hierarchy:controllers:path`` (cgroup v1 has many, v2 one ``0::/path``).
    """
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        match = _CONTAINER_ID.search(path) or _BARE_ID.search(path)
        if match:
            return match.group(1)
    return None


class ContainerResolver:
    """Maps pids to container names; ``lookup(id)`` asks Docker and returns a name or None."""

    def __init__(self, proc_root: str | Path, lookup: Callable[[str], str | None] | None,
                 cache_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.proc_root = Path(proc_root)
        self.lookup = lookup
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._names: ExpiringMap[str, str] = ExpiringMap(cache_seconds, clock)
        self._lock = threading.Lock()
        self.warn = WarnOnce(log)
        self.lookup_errors = 0

    def container_of(self, pid: int) -> str:
        try:
            text = (self.proc_root / str(pid) / "cgroup").read_text()
        except OSError:
            self.warn("unknown", "GPU process not visible in proc: is the exporter in the host pid namespace "
                      "(compose: pid: host)?", pid=pid, proc_root=str(self.proc_root))
            return UNKNOWN
        container_id = container_id_from_cgroup(text)
        if container_id is None:
            return HOST
        return self.name_of(container_id)

    def name_of(self, container_id: str) -> str:
        now = self.clock()
        with self._lock:
            if self._names.fresh(container_id, now):
                return self._names[container_id]
        name = None
        if self.lookup is not None:
            try:
                name = self.lookup(container_id)
            except Exception as e:
                self.lookup_errors += 1
                log.warning("container name lookup failed", extra={"container_id": container_id[:12], "error": str(e)})
        # Unknown to Docker (or Docker unreachable): show the short id, and ask again sooner.
        ttl = self.cache_seconds if name else min(self.cache_seconds, 10.0)
        name = name or container_id[:12]
        with self._lock:
            self._names.set(container_id, name, now, seconds=ttl)
        return name


def docker_lookup(host: str, timeout: float) -> Callable[[str], str | None]:
    """A lookup through the Docker SDK; ``host`` empty means DOCKER_HOST or the default socket.

    The client is made on first use (it asks the engine for its API version), so an engine that is
    down at start-up only costs lookups until it is back.
    """
    import docker
    from docker.errors import NotFound

    client = None

    def lookup(container_id: str) -> str | None:
        nonlocal client
        if client is None:
            client = docker.DockerClient(base_url=host, timeout=timeout) if host else docker.from_env(timeout=timeout)
        try:
            return client.containers.get(container_id).name
        except NotFound:
            return None

    return lookup
