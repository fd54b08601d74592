"""Which vLLM servers to scrape: static targets from settings, and containers found through Docker.

The pure functions read ``docker inspect`` JSON; :class:`DockerDiscovery` is the thin I/O part
(docker SDK, through the read-only socket proxy given by ``docker.host`` or ``DOCKER_HOST``).
"""

from __future__ import annotations

import logging
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

from llmwatch.core.cache import ExpiringMap
from llmwatch.core.checks import check_url, url_problem
from llmwatch.core.settings import DockerSettings, setting

log = logging.getLogger(__name__)

DEFAULT_PORT = 8000  # vLLM's API (and /metrics) port unless --port says otherwise
# Command fragments of a vLLM OpenAI-compatible server (new CLI, old module entry point).
_COMMANDS = ("vllm serve", "vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server")
_PORT_FLAG = re.compile(r"^--port(?:=(\d+))?$")
# "false" keeps a container out of the probe (no test completions sent to it) while the vLLM
# exporter still scrapes it: an embedding server, or one whose traffic must stay the users' own.
PROBE_LABEL = "llmwatch.probe"


@dataclass(frozen=True)
class Target:
    """One vLLM server. ``name`` becomes the ``container`` label of its series."""

    name: str
    url: str  # base URL, no trailing slash
    source: str  # "docker" or "static"
    image: str = ""
    gpus: tuple[str, ...] = ()  # GPU indices or UUIDs as Docker gave them, or ("all",)
    started_at: float | None = None  # unix time the container (re)started
    container_id: str = ""
    probe: bool = True  # False: the container's PROBE_LABEL says so


# Docker's container states (Engine API ``ContainerState.Status``), in the order a container
# lives through them.
DOCKER_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")


@dataclass(frozen=True)
class Container:
    """A vLLM container as Docker describes it, whatever its state.

    Fields are the Engine API's ``ContainerState`` (``Status``, ``ExitCode``, ``OOMKilled``,
    ``StartedAt``, ``FinishedAt``) and the inspect response's ``RestartCount``. ``target`` is how
    to reach it, only while it runs (an exited container has no address to scrape).
    """

    name: str
    container_id: str
    state: str  # one of DOCKER_STATES
    exit_code: int = 0
    oom_killed: bool = False
    restart_count: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    target: Target | None = None

    @property
    def ended(self) -> bool:
        """The process has exited (its exit code, OOM flag and finish time mean something): Docker
        keeps them while the container is exited, dead or waiting to be restarted, and resets them
        when it starts again."""
        return self.state in ("exited", "dead", "restarting")


# ---- static targets ---------------------------------------------------------------------------

def parse_static_targets(raw: Sequence) -> list[Target]:
    """``vllm.targets``: base URLs, or tables ``{name, url}``. Raises ValueError naming the bad entry."""
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise ValueError(f"must be a list of URLs or {{name, url}} tables, got {raw!r}")
    targets, names = [], set()
    for i, entry in enumerate(raw):
        where = f"entry {i + 1}"
        if isinstance(entry, str):
            name, url = None, entry
        elif isinstance(entry, Mapping):
            unknown = set(entry) - {"name", "url"}
            if unknown or "url" not in entry:
                raise ValueError(f"{where} must be a URL or a table with keys name and url, got {dict(entry)!r}")
            name, url = entry.get("name"), entry["url"]
        else:
            raise ValueError(f"{where} must be a URL or a {{name, url}} table, got {entry!r}")
        url = check_url(str(url), where)
        name = str(name) if name else urlsplit(url).netloc
        if name in names:
            raise ValueError(f"{where}: target name {name!r} is used twice (give each target a distinct name)")
        names.add(name)
        targets.append(Target(name=name, url=url, source="static"))
    return targets


# ---- Docker containers ------------------------------------------------------------------------

class RejectedLabel(ValueError):
    """A container's ``<label>.url`` is not a URL a static target could have; the container is skipped.

    Anyone who builds an image can set that label (a ``LABEL`` line), so it gets the same checks as
    ``vllm.targets``: without them the exporter would request any URL, query string included,
    and re-expose what answers as model names.
    """

@dataclass(frozen=True)
class MatchRules:
    """How a container is recognised as vLLM and reached (settings ``vllm.*``)."""

    label: str = "llmwatch.vllm"  # "true"/"false" opts in/out; <label>.port and <label>.url override
    image_patterns: tuple[str, ...] = ("vllm",)
    host_address: str = "host.docker.internal"  # how this exporter reaches the host's ports
    networks: tuple[str, ...] = ()  # preferred Docker networks for container IPs


def is_vllm(summary: Mapping, rules: MatchRules) -> bool:
    """From the ``/containers/json`` summary: opt-in label, image name or command."""
    labels = summary.get("Labels") or {}
    opt = str(labels.get(rules.label, "")).strip().lower()
    if opt in ("true", "1", "yes"):
        return True
    if opt in ("false", "0", "no"):
        return False
    image = str(summary.get("Image", "")).lower().rsplit("@", 1)[0]
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    if any(p.lower() in repository for p in rules.image_patterns):
        return True
    command = " ".join(str(summary.get("Command", "")).split())
    return any(c in command for c in _COMMANDS)


def command_port(args: Sequence[str]) -> int | None:
    """The value of ``--port N`` / ``--port=N`` in a command line, the last one winning."""
    port = None
    for i, arg in enumerate(args):
        match = _PORT_FLAG.match(arg)
        if not match:
            continue
        value = match.group(1) or (args[i + 1] if i + 1 < len(args) else "")
        if value.isdigit():
            port = int(value)
    return port


def container_command(inspect: Mapping) -> list[str]:
    """The process's full command line: ``Path`` + ``Args`` (entrypoint and command together)."""
    args = [inspect.get("Path") or "", *(inspect.get("Args") or [])]
    if not any(args):
        config = inspect.get("Config") or {}
        args = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    # `sh -c "vllm serve ... --port 8001"` hides the flags in one argument
    return [part for arg in args if arg for part in (shlex.split(arg) if " " in arg else [arg])]


def gpus_of(inspect: Mapping) -> tuple[str, ...]:
    """GPUs given to the container: device requests (``--gpus``, compose ``deploy``), else NVIDIA_VISIBLE_DEVICES."""
    host_config = inspect.get("HostConfig") or {}
    found: list[str] = []
    for request in host_config.get("DeviceRequests") or []:
        capabilities = [c for group in request.get("Capabilities") or [] for c in group]
        if "gpu" not in capabilities and request.get("Driver") != "nvidia":
            continue
        ids = request.get("DeviceIDs") or []
        if ids:
            found.extend(str(i) for i in ids)
        elif request.get("Count") == -1:
            return ("all",)
        elif request.get("Count"):
            found.append(f"count:{request['Count']}")
    if found:
        return tuple(dict.fromkeys(found))
    env = dict(e.split("=", 1) for e in (inspect.get("Config") or {}).get("Env") or [] if "=" in e)
    visible = env.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    if visible in ("", "none", "void"):
        return ()
    if visible == "all":
        return ("all",)
    return tuple(dict.fromkeys(v.strip() for v in visible.split(",") if v.strip()))


def started_at(inspect: Mapping) -> float | None:
    return _docker_time(inspect, "StartedAt")


def finished_at(inspect: Mapping) -> float | None:
    return _docker_time(inspect, "FinishedAt")


def _docker_time(inspect: Mapping, key: str) -> float | None:
    """``State.<key>`` as a unix time; None for Docker's "never" (year 1) and anything unreadable."""
    text = ((inspect.get("State") or {}).get(key) or "").strip()
    if not text or text.startswith("0001-"):
        return None
    # Docker writes nanoseconds; Python reads at most microseconds.
    text = re.sub(r"(\.\d{6})\d*", r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def target_url(inspect: Mapping, port: int, rules: MatchRules) -> str | None:
    """How to reach the container's API port from this exporter.

    An explicit ``<label>.url`` wins (RejectedLabel when it is not a plain http(s) base URL); a container on the host network is reached on the host;
    then a container IP on a preferred network (one this exporter is attached to); then a port
    published on the host; then any container IP.
    """
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    if labels.get(rules.label + ".url"):
        label_url = str(labels[rules.label + ".url"])
        problem = url_problem(label_url)
        if problem:
            raise RejectedLabel(f"label {rules.label}.url: {problem}")
        return label_url.rstrip("/")
    host_config = inspect.get("HostConfig") or {}
    settings = inspect.get("NetworkSettings") or {}
    if host_config.get("NetworkMode") == "host":
        return f"http://{rules.host_address}:{port}"
    networks = settings.get("Networks") or {}
    ips = {name: (net or {}).get("IPAddress") for name, net in networks.items() if (net or {}).get("IPAddress")}
    for name in rules.networks:
        if ips.get(name):
            return f"http://{ips[name]}:{port}"
    for binding in (settings.get("Ports") or {}).get(f"{port}/tcp") or []:
        if binding.get("HostPort"):
            return f"http://{rules.host_address}:{binding['HostPort']}"
    for ip in ips.values():
        return f"http://{ip}:{port}"
    return None


def container_from_inspect(inspect: Mapping, target: Target | None = None) -> Container:
    """A Container from ``docker inspect`` JSON (``State`` and ``RestartCount``)."""
    state = inspect.get("State") or {}
    status = str(state.get("Status") or "").lower()
    if status not in DOCKER_STATES:  # engines older than API 1.21 have no Status: the booleans
        status = ("restarting" if state.get("Restarting") else "paused" if state.get("Paused")
                  else "running" if state.get("Running") else "dead" if state.get("Dead") else "exited")
    name = str(inspect.get("Name", "")).lstrip("/") or str(inspect.get("Id", ""))[:12]
    return Container(name=name, container_id=str(inspect.get("Id", "")), state=status,
                     exit_code=int(state.get("ExitCode") or 0), oom_killed=bool(state.get("OOMKilled")),
                     restart_count=int(inspect.get("RestartCount") or 0), started_at=started_at(inspect),
                     finished_at=finished_at(inspect), target=target)


def target_from_inspect(inspect: Mapping, rules: MatchRules) -> Target | None:
    """A Target for a running vLLM container, or None when it cannot be reached; RejectedLabel
    when its URL label is not acceptable."""
    config = inspect.get("Config") or {}
    labels = config.get("Labels") or {}
    name = str(inspect.get("Name", "")).lstrip("/") or str(inspect.get("Id", ""))[:12]
    label_port = str(labels.get(rules.label + ".port", "")).strip()
    port = int(label_port) if label_port.isdigit() else (command_port(container_command(inspect)) or DEFAULT_PORT)
    url = target_url(inspect, port, rules)
    if url is None:
        log.warning("vLLM container has no reachable address (no network, no published port)",
                    extra={"container": name})
        return None
    return Target(name=name, url=url, source="docker", image=str(config.get("Image", "")),
                  gpus=gpus_of(inspect), started_at=started_at(inspect), container_id=str(inspect.get("Id", "")),
                  probe=str(labels.get(PROBE_LABEL, "")).strip().lower() not in ("false", "0", "no"))


class DockerDiscovery:
    """Lists vLLM containers through the Docker Engine API, running or not.

    Containers are listed every scrape (one cheap call, ``all=true`` so an exited or restarting
    container is reported rather than vanishing), so they come and go without a restart. A
    container is inspected when first seen, when the list shows it in another state, and again
    once its inspection is older than ``inspect_seconds`` (a restart keeps the id but changes the
    start time), so ten containers do not cost ten more calls on every scrape.
    """

    def __init__(self, host: str, timeout: float, rules: MatchRules, inspect_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.host, self.timeout, self.rules = host, timeout, rules
        self.inspect_seconds, self.clock = inspect_seconds, clock
        self._client = None
        # id -> (the list's State when inspected, the container)
        self._inspected: ExpiringMap[str, tuple[str, Container]] = ExpiringMap(inspect_seconds, clock)
        self._rejected: set[str] = set()  # containers whose URL label was rejected (logged once)

    def _api(self):
        if self._client is None:
            import docker

            self._client = (docker.DockerClient(base_url=self.host, timeout=self.timeout) if self.host
                            else docker.from_env(timeout=self.timeout))
        return self._client.api

    def containers(self) -> list[Container]:
        """Every vLLM container in any state, by name. Raises (docker.errors.DockerException,
        requests' errors) when the engine cannot be asked."""
        api = self._api()
        now = self.clock()
        summaries = [s for s in api.containers(all=True) if is_vllm(s, self.rules)]
        found = []
        for summary in summaries:
            cid, listed = summary["Id"], str(summary.get("State", ""))
            if not self._inspected.fresh(cid, now) or self._inspected[cid][0] != listed:
                self._inspected.set(cid, (listed, self._container(api.inspect_container(cid))), now)
            found.append(self._inspected[cid][1])
        self._inspected.keep(s["Id"] for s in summaries)
        self._rejected &= {s["Id"] for s in summaries}
        return sorted(found, key=lambda c: c.name)

    def refresh(self, container: Container) -> Container:
        """``container`` inspected again now, whatever the cache says. A restart between two lists
        shows nothing in the list (running before and after), only a new start time: the vLLM
        exporter asks this when a server that answered stops answering, so that a restart is seen
        as a new start (within its grace) rather than as an outage. Raises as :meth:`containers`."""
        fresh = self._container(self._api().inspect_container(container.container_id))
        try:
            listed = self._inspected[container.container_id][0]
        except KeyError:
            return fresh
        self._inspected.set(container.container_id, (listed, fresh))
        return fresh

    def targets(self) -> list[Target]:
        """The running containers that can be reached: what there is to scrape or probe."""
        return [c.target for c in self.containers() if c.state == "running" and c.target is not None]

    def _container(self, inspect: Mapping) -> Container:
        container = container_from_inspect(inspect)
        if container.state != "running":  # nothing to reach (a paused one would not answer)
            return container
        return replace(container, target=self._target(inspect))

    def _target(self, inspect: Mapping) -> Target | None:
        try:
            return target_from_inspect(inspect, self.rules)
        except RejectedLabel as e:
            cid = str(inspect.get("Id", ""))
            if cid not in self._rejected:  # once per container, not at every inspection
                self._rejected.add(cid)
                log.warning("vLLM container skipped: its URL label is rejected",
                            extra={"container": str(inspect.get("Name", "")).lstrip("/") or cid[:12],
                                   "problem": str(e)})
            return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


# ---- settings shared by the vLLM exporter and the probe ---------------------------------------

@dataclass(frozen=True)
class DiscoverySettings:
    """The ``[vllm]`` keys that say which vLLM servers exist. The vLLM exporter's settings extend
    these; the probe reads them as a partial view, so both follow the same servers."""

    discovery: bool = setting(help="find vLLM containers through the Docker API")
    targets: list = setting(check=parse_static_targets,
                            help="engines outside Docker: base URLs or {name, url} tables")
    label: str = setting(help="container label: true/false opts in/out; <label>.port, <label>.url override")
    image_patterns: list = setting(help="a container whose image repository contains one of these is vLLM")
    host_address: str = setting(help="how this exporter reaches ports on the host (host-network or published)")
    networks: list = setting(help="Docker networks, shared with this exporter, whose container IPs to prefer")
    inspect_cache_seconds: float = setting(min=0, max=3600)


def discovery_from(vllm: DiscoverySettings, docker: DockerSettings) -> DockerDiscovery | None:
    """Docker discovery as ``[vllm]`` and ``[docker]`` ask for it (None when switched off)."""
    if not vllm.discovery:
        return None
    rules = MatchRules(label=vllm.label, image_patterns=tuple(vllm.image_patterns),
                       host_address=vllm.host_address, networks=tuple(vllm.networks))
    return DockerDiscovery(docker.host, docker.timeout_seconds, rules, inspect_seconds=vllm.inspect_cache_seconds)
