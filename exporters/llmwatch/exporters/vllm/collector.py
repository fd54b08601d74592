"""The vLLM exporter's scrape: find targets, fetch them concurrently, normalise, merge, describe.

Per scrape: the target list (static + Docker), then one concurrent round of GETs under the
budget (``/metrics`` always; ``/health``, ``/v1/models`` and ``/version`` when their cache has
expired), then each body is parsed and normalised, and all targets' families are merged into one
family per name with a ``container`` label telling the series apart.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

from llmwatch.core.logs import WarnOnce
from llmwatch.core.scrape import ExporterCollector, ScrapeErrors, natural_key, one_in_flight, up_family
from llmwatch.upstreams.vllm_discovery import DOCKER_STATES, Container, DockerDiscovery, Target
from llmwatch.exporters.vllm.exposition import ExpositionReader, SeriesText
from llmwatch.core.fetch import ERRORS as FETCH_ERRORS, Fetcher, Reply
from llmwatch.exporters.vllm.normalise import RENAMED_MARK, normalise

log = logging.getLogger(__name__)

# Why a target had no (complete) exposition this scrape; per target and in scrape_errors_total.
TARGET_REASONS = (*FETCH_ERRORS, "invalid_exposition", "invalid_line", "type_conflict")
ERROR_REASONS = (*TARGET_REASONS, "docker")
UNKNOWN = "unknown"
# Ask for the classic text format: OpenMetrics would add exemplars and # EOF.
ACCEPT = "text/plain;version=0.0.4;q=0.9,*/*;q=0.1"
# llmwatch_vllm_container_state: Docker's states, plus "starting" (running, not answering yet,
# within the start grace), which is what tells a model still loading from a server that is down.
CONTAINER_STATES = ("created", "starting", *DOCKER_STATES[1:])


def vllm_fetcher(max_body_bytes: int = 8 << 20) -> Fetcher:
    return Fetcher("vllm", {"Accept": ACCEPT}, max_body_bytes)


class PassthroughFamily:
    """An upstream family re-exposed: metric-family shaped for prometheus-client, and able to write
    its own text lines (the HTTP server's fast path, see llmwatch.core.http)."""

    unit = ""

    def __init__(self, name: str, documentation: str, type_: str):
        self.name, self.documentation, self.type = name, documentation, type_
        self.series: list[SeriesText] = []
        self.values: list[str] = []

    @property
    def samples(self) -> list[Sample]:
        return [Sample(s.name, s.labels, float(v)) for s, v in zip(self.series, self.values)]

    def text_lines(self) -> list[str]:
        return [s.prefix + v for s, v in zip(self.series, self.values)]


class TargetState:
    """What the exporter remembers about one target between scrapes."""

    def __init__(self, target: Target):
        self.target = target
        self._reader: ExpositionReader | None = None
        self.version = UNKNOWN
        self.models: list[dict] = []
        self.metadata_at = -math.inf
        self.healthy: bool | None = None
        self.health_at = -math.inf
        self.up = False
        self.answered_start: float | None = None  # the start time it last answered after (None: never)
        self.errors = dict.fromkeys(TARGET_REASONS, 0)
        self.warn = WarnOnce(log)  # once per target and reason, not every 30 s

    def reader(self) -> ExpositionReader:
        """The target's reader; its series carry ``container`` and ``vllm_version`` labels."""
        labels = {"container": self.target.name, "vllm_version": self.version}
        if self._reader is None or self._reader.extra_labels != labels:
            # new version or name: the cached series are stale
            self._reader = ExpositionReader(labels, drop_created=True)
        return self._reader


class TargetResult:
    """One target's outcome in one scrape."""

    def __init__(self, state: TargetState):
        self.state = state
        self.families = []
        self.renamed: dict[str, str] = {}
        self.seconds = 0.0
        self.metric_model = ""  # model_name label seen in the exposition, if /v1/models is unknown


class VllmExporter:
    def __init__(self, *, static_targets: list[Target], discovery: DockerDiscovery | None, fetcher: Fetcher,
                 budget: float, prefixes: tuple[str, ...] = ("vllm:", "http_"), metadata_seconds: float = 60.0,
                 health_seconds: float = 10.0, lora_limit: int = 50, start_grace: float = 900.0,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time):
        self.static_targets = static_targets
        self.discovery = discovery
        self.fetcher = fetcher
        self.budget = budget
        self.prefixes = prefixes
        self.metadata_seconds = metadata_seconds
        self.health_seconds = health_seconds
        self.lora_limit = lora_limit
        self.start_grace = start_grace
        self.clock, self.wall_clock = clock, wall_clock
        self.states: dict[tuple[str, str], TargetState] = {}
        self.last_discovered: list[Container] = []
        self.docker_up: bool | None = None
        # Two Prometheus servers scraping at once take turns: the per-target state (caches,
        # up/down transitions) stays consistent and the upstreams are not asked twice as often.
        self.collector = ExporterCollector("vllm", one_in_flight(self.scrape), reasons=ERROR_REASONS)
        self.text_only = True  # serve PassthroughFamily lines as they are

    def close(self) -> None:
        self.fetcher.close()
        if self.discovery is not None:
            self.discovery.close()

    # ---- targets ------------------------------------------------------------------------------

    def targets(self, errors: ScrapeErrors) -> list[Target]:
        """Static targets, then the running discovered containers; Docker down means the last
        known containers. Every discovered container, running or not, is kept in ``last_discovered``
        for its lifecycle series."""
        discovered = []
        if self.discovery is not None:
            try:
                self.last_discovered = self.discovery.containers()
                discovered = [c.target for c in self.last_discovered if c.state == "running" and c.target]
                self.docker_up = True
            except Exception as e:
                errors.add("docker")
                if self.docker_up is not False:
                    log.warning("Docker discovery failed; scraping the containers found before",
                                extra={"error": f"{type(e).__name__}: {e}", "containers": len(self.last_discovered)})
                self.docker_up = False
                discovered = [c.target for c in self.last_discovered if c.state == "running" and c.target]
        targets, names, urls = [], set(), set()
        for target in [*self.static_targets, *discovered]:
            if target.url in urls or target.name in names:
                continue  # a static entry for a container, or two containers reached at one address
            names.add(target.name)
            urls.add(target.url)
            targets.append(target)
        return sorted(targets, key=lambda t: natural_key(t.name))

    def _state(self, target: Target) -> TargetState:
        key = (target.name, target.url)
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = TargetState(target)
        state.target = target  # image, GPUs and start time may have changed
        return state

    # ---- scrape -------------------------------------------------------------------------------

    def scrape(self, errors: ScrapeErrors) -> list:
        states = [self._state(t) for t in self.targets(errors)]
        live = {(s.target.name, s.target.url) for s in states}
        self.states = {k: v for k, v in self.states.items() if k in live}

        now = self.clock()
        plan: list[tuple[TargetState, str]] = []
        for state in states:
            plan.append((state, "metrics"))
            if not state.up or now - state.metadata_at >= self.metadata_seconds:
                plan += [(state, "models"), (state, "version")]
            if now - state.health_at >= self.health_seconds:
                plan.append((state, "health"))
        paths = {"metrics": "/metrics", "models": "/v1/models", "version": "/version", "health": "/health"}
        results = {id(s): TargetResult(s) for s in states}
        # A target's /metrics is read once its other replies are in (its vllm_version label comes
        # from /version), while other targets may still be answering.
        pending = Counter(id(s) for s, _ in plan)
        held: dict[int, Reply] = {}
        for index, reply in self.fetcher.as_completed([s.target.url + paths[w] for s, w in plan], self.budget):
            state, what = plan[index]
            if what == "metrics":
                held[id(state)] = reply
            elif what == "health":
                state.healthy, state.health_at = reply.status == 200, now
            elif reply.ok:
                self._read_metadata(state, what, reply.body, now)
            pending[id(state)] -= 1
            if not pending[id(state)]:
                self._read_metrics(results[id(state)], held.pop(id(state)), errors)
        self._recheck_silent(states, errors)
        ordered = [results[id(s)] for s in states]
        return [*self._merge(ordered, errors), *self._describe(ordered)]

    def _recheck_silent(self, states: list[TargetState], errors: ScrapeErrors) -> None:
        """Inspect again each container whose server answered since its known start and no longer
        does: a restart between two scrapes keeps the list unchanged (running before and after), and
        only a fresh inspection shows the new start time that makes it ``starting``, not down."""
        if self.discovery is None or not self.docker_up:
            return
        silent = {s.target.name for s in states
                  if s.target.source == "docker" and not s.up and s.answered_start is not None
                  and s.answered_start == s.target.started_at}
        for i, container in enumerate(self.last_discovered):
            if container.name not in silent:
                continue
            try:
                self.last_discovered[i] = fresh = self.discovery.refresh(container)
            except Exception as e:
                errors.add("docker")
                log.warning("Docker inspection failed", extra={"container": container.name,
                                                               "error": f"{type(e).__name__}: {e}"})
                return
            for state in states:
                if state.target.name == fresh.name and fresh.target is not None:
                    state.target = fresh.target

    def _fail(self, state: TargetState, reason: str, detail: str, errors: ScrapeErrors) -> None:
        state.errors[reason] += 1
        errors.add(reason)
        state.warn(reason, "vLLM target not scraped", container=state.target.name, url=state.target.url,
                   reason=reason, detail=detail)

    def _read_metrics(self, result: TargetResult, reply: Reply, errors: ScrapeErrors) -> None:
        state = result.state
        result.seconds = reply.seconds
        if not reply.ok:
            state.up = False
            self._fail(state, reply.error, reply.detail, errors)
            return
        families, problems = state.reader().read(reply.body.decode("utf-8", errors="replace"))
        if problems and not any(f.series for f in families):
            state.up = False
            self._fail(state, "invalid_exposition", problems[0], errors)
            return
        if problems:
            self._fail(state, "invalid_line", f"{len(problems)} unreadable lines, first: {problems[0]}", errors)
        state.answered_start = state.target.started_at
        if not state.up:
            state.warn.clear()
            log.info("vLLM target up", extra={"container": state.target.name, "url": state.target.url})
        state.up = True
        normalised = normalise(families, self.prefixes)
        result.families, result.renamed = normalised.families, normalised.renamed
        for fam in normalised.families:
            if fam.name.startswith("vllm:") and "model_name" in fam.series[0].labels:
                result.metric_model = fam.series[0].labels["model_name"]
                break

    def _read_metadata(self, state: TargetState, what: str, body: bytes, now: float) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            return
        if what == "version" and isinstance(data, dict) and data.get("version"):
            state.version = str(data["version"])
        elif what == "models" and isinstance(data, dict) and isinstance(data.get("data"), list):
            state.models = [m for m in data["data"] if isinstance(m, dict) and m.get("id")]
            state.metadata_at = now

    def _merge(self, results: list[TargetResult], errors: ScrapeErrors) -> list[PassthroughFamily]:
        """One family per name across targets; a name typed differently by two targets keeps the first."""
        merged: dict[str, PassthroughFamily] = {}
        for result in results:
            for fam in result.families:
                metric = merged.get(fam.name)
                if metric is None:
                    metric = merged[fam.name] = PassthroughFamily(fam.name, fam.help, fam.type)
                elif metric.type != fam.type and {metric.type, fam.type} == {"gauge", "unknown"}:
                    metric.type = "gauge"  # a gauge sent without its TYPE line somewhere: same samples
                elif metric.type != fam.type:
                    self._fail(result.state, "type_conflict", f"{fam.name} is a {fam.type} here but a "
                               f"{metric.type} on another target; left out", errors)
                    continue
                elif RENAMED_MARK in metric.documentation and RENAMED_MARK not in fam.help:
                    metric.documentation = fam.help
                metric.series.extend(fam.series)
                metric.values.extend(fam.values)
        return list(merged.values())

    # ---- llmwatch_vllm_* ----------------------------------------------------------------------

    def _describe(self, results: list[TargetResult]) -> Iterable[Metric]:
        states = [r.state for r in results]
        yield up_family("vllm", "container", {s.target.name: s.up for s in states},
                        "1 when the vLLM server's /metrics answered with a readable exposition this scrape.")
        healthy = GaugeMetricFamily("llmwatch_vllm_healthy", "1 when /health answered 200 (engine alive), "
                                    "0 when it answered otherwise or not at all.", labels=["container"])
        duration = GaugeMetricFamily("llmwatch_vllm_target_scrape_duration_seconds",
                                     "Time the server took to answer /metrics this scrape.", labels=["container"])
        samples = GaugeMetricFamily("llmwatch_vllm_target_samples",
                                    "Samples re-exposed from this server this scrape (0 while it is down).",
                                    labels=["container"])
        target_errors = CounterMetricFamily("llmwatch_vllm_target_errors",
                                            "Scrapes of this server that failed or were incomplete, by reason.",
                                            labels=["container", "reason"])
        info = GaugeMetricFamily("llmwatch_vllm_instance_info",
                                 "One vLLM server: image, vLLM version, served model, context length, GPUs; always 1.",
                                 labels=["container", "source", "image", "vllm_version", "model_name", "root",
                                         "max_model_len", "gpus"])
        gpu = GaugeMetricFamily("llmwatch_vllm_container_gpu", "GPU given to the container (an index, a UUID "
                                "or \"all\", as Docker has it); always 1.", labels=["container", "gpu"])
        lora = GaugeMetricFamily("llmwatch_vllm_lora_adapter_info", "A LoRA adapter the server lists in /v1/models "
                                 "and its base model; always 1.", labels=["container", "adapter", "base_model"])
        renamed = GaugeMetricFamily("llmwatch_vllm_renamed_info", "An upstream metric re-exposed under vLLM's "
                                    "newest name (the server runs an older vLLM); always 1.",
                                    labels=["container", "upstream_name", "name"])
        for result in results:
            state, target = result.state, result.state.target
            name = target.name
            if state.healthy is not None:
                healthy.add_metric([name], 1.0 if state.healthy else 0.0)
            duration.add_metric([name], result.seconds)
            samples.add_metric([name], float(sum(len(f.series) for f in result.families)))
            for reason, count in state.errors.items():
                target_errors.add_metric([name, reason], count)
            base = next((m for m in state.models if not m.get("parent")), {})
            model = str(base.get("id") or result.metric_model or UNKNOWN)
            max_len = base.get("max_model_len")
            info.add_metric([name, target.source, target.image or UNKNOWN, state.version, model,
                             str(base.get("root") or UNKNOWN), str(max_len) if max_len else UNKNOWN,
                             ",".join(target.gpus)], 1.0)
            for g in target.gpus:
                gpu.add_metric([name, g], 1.0)
            adapters = [m for m in state.models if m.get("parent")]
            for adapter in adapters[: self.lora_limit]:
                lora.add_metric([name, str(adapter["id"]), str(adapter["parent"])], 1.0)
            for old, new in sorted(result.renamed.items()):
                renamed.add_metric([name, old, new], 1.0)
        yield from (healthy, duration, samples, target_errors, info, gpu, lora, renamed)
        yield from self._lifecycle(states)
        by_source: dict[str, int] = {"static": 0}
        if self.discovery is not None:
            by_source["docker"] = 0
            yield GaugeMetricFamily("llmwatch_vllm_docker_up", "1 when Docker discovery answered this scrape; "
                                    "while 0 the containers found before are still scraped.",
                                    value=1.0 if self.docker_up else 0.0)
        for s in states:
            by_source[s.target.source] = by_source.get(s.target.source, 0) + 1
        targets = GaugeMetricFamily("llmwatch_vllm_targets", "vLLM servers this exporter scrapes, by where "
                                    "they were found.", labels=["source"])
        for source, count in sorted(by_source.items()):
            targets.add_metric([source], count)
        yield targets

    # ---- container lifecycle ------------------------------------------------------------------

    def container_state(self, container: Container, target: TargetState | None) -> str:
        """Docker's state, except that a running container which has not answered since it
        started, and started less than ``start_grace`` ago, is ``starting``: vLLM opens its port
        only once the model is loaded (minutes for a 70B model), and that is not an outage. A
        server that answered once and then stops is down at once, grace or not."""
        if container.state != "running" or target is None or target.up:
            return container.state
        if container.started_at is None or target.answered_start == container.started_at:
            return container.state
        return "starting" if self.wall_clock() - container.started_at < self.start_grace else container.state

    def _lifecycle(self, states: list[TargetState]) -> Iterable[Metric]:
        """Every vLLM container Docker knows, running or not, with its state.

        Only running containers are scraped, so only they have ``llmwatch_vllm_up``: an exited
        container gets no up series rather than up 0. Its state, exit code and OOM flag say why
        it is gone, and one alert per cause can follow (exited with an error, restart loop, not
        answering after its grace) without ``VllmInstanceDown`` also paging for a container that
        was stopped on purpose.
        """
        by_name = {s.target.name: s for s in states if s.target.source == "docker"}
        state = GaugeMetricFamily("llmwatch_vllm_container_state", "1 for the state the vLLM container is in "
                                  "(Docker's State.Status, and starting: running but not answering yet, "
                                  "within the start grace), 0 for the others.", labels=["container", "state"])
        exit_code = GaugeMetricFamily("llmwatch_vllm_container_exit_code", "Docker's State.ExitCode of the "
                                      "container's last run, while it is exited, dead or restarting.",
                                      labels=["container"])
        oom = GaugeMetricFamily("llmwatch_vllm_container_oom_killed", "1 when the kernel killed the container "
                                "for exceeding its memory limit (Docker's State.OOMKilled), while it is "
                                "exited, dead or restarting.", labels=["container"])
        restarts = CounterMetricFamily("llmwatch_vllm_container_restarts", "Times Docker restarted the "
                                       "container by its restart policy (RestartCount; a manual start resets it).",
                                       labels=["container"])
        started = GaugeMetricFamily("llmwatch_vllm_container_start_time_seconds", "When the container last "
                                    "started (Docker's State.StartedAt), as a unix time.", labels=["container"])
        finished = GaugeMetricFamily("llmwatch_vllm_container_finish_time_seconds", "When the container's "
                                     "last run ended (Docker's State.FinishedAt), as a unix time.",
                                     labels=["container"])
        for container in self.last_discovered:
            name = container.name
            current = self.container_state(container, by_name.get(name))
            for value in CONTAINER_STATES:
                state.add_metric([name, value], 1.0 if value == current else 0.0)
            if container.ended:
                exit_code.add_metric([name], container.exit_code)
                oom.add_metric([name], 1.0 if container.oom_killed else 0.0)
            restarts.add_metric([name], container.restart_count)
            if container.started_at is not None:
                started.add_metric([name], container.started_at)
            if container.finished_at is not None:
                finished.add_metric([name], container.finished_at)
        yield from (state, exit_code, oom, restarts, started, finished)
