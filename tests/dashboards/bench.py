"""The dashboards' queries timed against a day of synthetic data (scripts/bench_dashboards, and the
integration test that runs the same machinery on a tiny fleet).

The data: every series the boards and the recording rules read, for a fleet of ``servers`` vLLM
containers and ``gpus`` GPUs, one sample every 30 s (the stack's scrape interval) over ``hours``
ending now. Series and label sets come from what the exporters really expose (the golden
expositions of the vLLM, GPU, LiteLLM, Langfuse, insights and probe exporters, the simulated
LiteLLM proxy and cAdvisor) plus node-exporter, Prometheus and Alertmanager families written out
here; one entity of each (a vLLM container, a GPU, a model) is cloned across the fleet. Counters
grow with a daily load curve (busy afternoons, quiet nights) and never go down; histogram buckets
grow in step, so every bucket stays below the next. The text goes through the pinned promtool into
TSDB blocks (``create-blocks-from openmetrics``), then the recording rules of config/prometheus/rules
are evaluated over the same hours by ``create-blocks-from rules`` against a Prometheus serving those
blocks, level by level (a rule reading another rule's series waits for that rule's blocks).

The queries: every Prometheus query of every board with the variables at "All" and at one value
(the first each variable's own query lists), built-ins as Grafana computes them for the range on
a panel ``PANEL_PX`` wide, run as range queries at Grafana's step (instant where the panel asks
for instant), each timed as the median of a few runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import time
import types
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from llmwatch.simulation.litellm import prometheus_metrics, sample_state
from llmwatch.simulation.server import exposition
from tests.binaries import binary
from tests.dashboards.boards import DASHBOARDS, MAY_BE_EMPTY, NEEDS_A_FEATURE, panels, prometheus_regex
from tests.fakes.cadvisor import Container, FakeCadvisor
from tests.procs import REPO, Process, free_port, wait_until

SCRAPE = 30  # seconds between samples, as the stack scrapes (config/prometheus/prometheus.yml)
PANEL_PX = 1920  # Grafana asks for at most one point per pixel of the panel's width
DAY = 86400.0
GOLDEN = REPO / "tests"
RULES = REPO / "config" / "prometheus" / "rules"


@dataclass(frozen=True)
class Fleet:
    servers: int = 10
    gpus: int = 8
    hours: float = 24.0

    def container(self, i: int) -> str:
        return f"vllm-{i}"

    def model(self, i: int) -> str:
        """Two containers per model (the last one alone when odd): per-model sums span containers."""
        return f"model-{i // 2}"

    def gpu_of(self, i: int) -> str:
        return str(i % self.gpus)

    def models(self) -> list[str]:
        return sorted({self.model(i) for i in range(self.servers)})


@dataclass(frozen=True)
class Series:
    name: str
    labels: tuple[tuple[str, str], ...]
    counter: bool
    value: float  # a counter's value after one hour of average load, a gauge's typical value


# --- the series --------------------------------------------------------------------------------

def _parse(text: str, job: str) -> list[Series]:
    """Samples of an exposition as series of ``job`` (placeholders such as ``<duration>`` read as 0.01)."""
    text = re.sub(r"<[a-z_]+>", "0.01", text)
    found = []
    for family in text_string_to_metric_families(text):
        counter = family.type in ("counter", "histogram", "summary", "gaugehistogram")
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = {"job": job, "instance": f"{job}:9000", **sample.labels}
            found.append(Series(sample.name, tuple(sorted(labels.items())), counter, float(sample.value)))
    return found


def _golden(path: str, job: str) -> list[Series]:
    return _parse((GOLDEN / path).read_text(), job)


def _relabel(series: Series, **changes: str) -> Series:
    labels = dict(series.labels)
    labels.update({k: v for k, v in changes.items() if k in labels})
    return Series(series.name, tuple(sorted(labels.items())), series.counter, series.value)


def _label(series: Series, name: str) -> str | None:
    return dict(series.labels).get(name)


def vllm_series(fleet: Fleet) -> list[Series]:
    """The vLLM exporter: the golden fleet's newest server (two data-parallel engines) once per container."""
    template = "vllm-0.28.0"
    golden = _golden("vllm/golden/fleet.prom", "llmwatch-vllm")
    own = [s for s in golden if _label(s, "container") is None]
    one = [s for s in golden if _label(s, "container") == template]
    found = list(own)
    # every server drafts speculatively (V1 counters), so the acceptance panel has data
    speculative = [s for s in _golden("vllm/golden/speculative.prom", "llmwatch-vllm")
                   if s.name.startswith("vllm:spec_decode") and _label(s, "container") == "vllm-eagle"]
    for i in range(fleet.servers):
        found += [_relabel(s, container=fleet.container(i), model_name=fleet.model(i), gpus=fleet.gpu_of(i))
                  for s in one]
        found += [_relabel(s, container=fleet.container(i), model_name=fleet.model(i)) for s in speculative]
        found.append(Series("llmwatch_vllm_container_gpu", tuple(sorted({
            "job": "llmwatch-vllm", "instance": "llmwatch-vllm:9000", "container": fleet.container(i),
            "gpu": fleet.gpu_of(i)}.items())), False, 1.0))
    return found


def gpu_series(fleet: Fleet) -> list[Series]:
    """The GPU exporter: GPU 0 of the golden 8xH200 once per GPU; its processes are the fleet's containers."""
    golden = _golden("gpu/golden/h200_serving.prom", "llmwatch-gpu")
    found = [s for s in golden if _label(s, "gpu") is None]
    one = [s for s in golden if _label(s, "gpu") == "0" and _label(s, "container") is None]
    held = [s for s in golden if _label(s, "gpu") == "0" and _label(s, "container") is not None][:2]
    for g in range(fleet.gpus):
        found += [_relabel(s, gpu=str(g), uuid=f"GPU-{g:08d}", pci_bus_id=f"00000000:{g + 16:02X}:00.0")
                  for s in one]
    for i in range(fleet.servers):
        found += [_relabel(s, gpu=fleet.gpu_of(i), container=fleet.container(i)) for s in held]
    return found


def insights_series(fleet: Fleet) -> list[Series]:
    """The insights exporter: prices per GPU, advice and forecast per model, the fleet's allocation."""
    golden = _golden("insights/golden/node.prom", "llmwatch-insights")
    template = "llama-3.1-70b"
    found = [s for s in golden if _label(s, "gpu") is None and _label(s, "model_name") in (None, "default")]
    per_gpu = [s for s in golden if _label(s, "gpu") == "0" and _label(s, "model_name") is None]
    per_model = [s for s in golden if _label(s, "model_name") == template and _label(s, "gpu") is None]
    allocation = next(s for s in golden if _label(s, "gpu") == "0" and _label(s, "model_name") == template)
    for g in range(fleet.gpus):
        found += [_relabel(s, gpu=str(g)) for s in per_gpu]
    for model in fleet.models():
        found += [_relabel(s, model_name=model) for s in per_model]
    for pair in sorted({(fleet.gpu_of(i), fleet.model(i)) for i in range(fleet.servers)}):
        found.append(_relabel(allocation, gpu=pair[0], model_name=pair[1]))
    return found


def cadvisor_series(fleet: Fleet) -> list[Series]:
    """cAdvisor: the fleet's vLLM containers and the monitoring stack's own."""
    containers = [Container(fleet.container(i), "vllm/vllm-openai:v0.28.0", fleet.container(i), 1.0, 20 << 30)
                  for i in range(fleet.servers)]
    containers += [Container(name, f"{name}:latest", name, 0.2, 1 << 30, 4 << 30)
                   for name in ("litellm", "prometheus", "grafana", "loki", "alloy", "gpu-exporter", "vllm-exporter")]
    fake = types.SimpleNamespace(containers=containers, born=time.time() - 3600)
    families = FakeCadvisor.families(fake, time.time())
    return _parse(exposition(families).decode(), "cadvisor")


def _written(job: str, rows: list[tuple[str, dict, bool, float]]) -> list[Series]:
    return [Series(name, tuple(sorted({"job": job, "instance": f"{job}:9000", **labels}.items())), counter, value)
            for name, labels, counter, value in rows]


def node_series() -> list[Series]:
    """node-exporter: the families the System board and the host rules read, for a GPU host of the
    8-GPU class (two 56-core CPUs, 224 hardware threads)."""
    rows = []
    for cpu in range(224):
        for mode, share in (("user", 0.3), ("system", 0.08), ("idle", 0.55), ("iowait", 0.02), ("irq", 0.01),
                            ("softirq", 0.01), ("steal", 0.0), ("nice", 0.0)):
            rows.append(("node_cpu_seconds_total", {"cpu": str(cpu), "mode": mode}, True, 3600 * share))
    rows += [("node_memory_MemTotal_bytes", {}, False, 2 << 40), ("node_memory_MemAvailable_bytes", {}, False, 1 << 40),
             ("node_memory_Cached_bytes", {}, False, 600 << 30), ("node_memory_Buffers_bytes", {}, False, 4 << 30),
             ("node_load1", {}, False, 9.0), ("node_load5", {}, False, 8.0), ("node_load15", {}, False, 7.0),
             ("node_boot_time_seconds", {}, False, 1.7e9), ("node_vmstat_oom_kill", {}, True, 0.0),
             ("node_timex_offset_seconds", {}, False, 0.0002), ("node_timex_maxerror_seconds", {}, False, 0.01),
             ("node_timex_sync_status", {}, False, 1.0)]
    for kind in ("cpu", "memory", "io"):
        rows.append((f"node_pressure_{kind}_waiting_seconds_total", {}, True, 36.0))
    filesystems = (("/dev/vda1", "ext4", "/", 2 << 40), ("/dev/nvme0n1", "xfs", "/data", 8 << 40),
                   ("tmpfs", "tmpfs", "/run", 64 << 30))
    for device, fstype, mountpoint, size in filesystems:
        fs = {"device": device, "fstype": fstype, "mountpoint": mountpoint}
        rows += [("node_filesystem_size_bytes", fs, False, size), ("node_filesystem_avail_bytes", fs, False, size / 3),
                 ("node_filesystem_files", fs, False, 1e8), ("node_filesystem_files_free", fs, False, 9e7),
                 ("node_filesystem_readonly", fs, False, 0.0), ("node_filesystem_device_error", fs, False, 0.0)]
    for device in ("vda", "nvme0n1"):
        rows += [("node_disk_read_bytes_total", {"device": device}, True, 3e10),
                 ("node_disk_written_bytes_total", {"device": device}, True, 1e10),
                 ("node_disk_io_time_seconds_total", {"device": device}, True, 600.0),
                 ("node_disk_reads_completed_total", {"device": device}, True, 4e6),
                 ("node_disk_writes_completed_total", {"device": device}, True, 2e6),
                 ("node_disk_read_time_seconds_total", {"device": device}, True, 800.0),
                 ("node_disk_write_time_seconds_total", {"device": device}, True, 900.0)]
    rows += [("node_filefd_allocated", {}, False, 20000.0), ("node_filefd_maximum", {}, False, 9.2e18)]
    for device in ("eth0", "lo", "docker0"):
        rows += [(f"node_network_{way}_{what}_total", {"device": device}, True, value)
                 for way in ("receive", "transmit") for what, value in (("bytes", 4e10), ("packets", 3e7), ("errs", 0), ("drop", 30))]
    return _written("node", rows)


def stack_series() -> list[Series]:
    """Prometheus and Alertmanager about themselves."""
    prometheus = [("prometheus_config_last_reload_successful", {}, False, 1.0),
                  ("prometheus_notifications_alertmanagers_discovered", {}, False, 1.0),
                  ("prometheus_notifications_errors_total", {"alertmanager": "alertmanager:23003"}, True, 0.0),
                  ("prometheus_tsdb_head_series", {}, False, 14000.0),
                  ("prometheus_tsdb_storage_blocks_bytes", {}, False, 3e9)]
    prometheus += [(f"prometheus_tsdb_{name}_total", {}, True, 0.0) for name in
                   ("compactions_failed", "head_truncations_failed", "reloads_failures", "wal_corruptions",
                    "wal_truncations_failed", "wal_writes_failed")]
    prometheus += [("prometheus_rule_evaluation_failures_total", {"rule_group": f"/etc/prometheus/rules/{f.name};{g}"},
                    True, 0.0) for f in sorted(RULES.glob("*.yml")) for g in ("a", "b")]
    alertmanager = [("alertmanager_notifications_failed_total", {"integration": i}, True, 0.0)
                    for i in ("email", "webhook")]
    alertmanager += [("alertmanager_notifications_total", {"integration": i}, True, 2.0) for i in ("email", "webhook")]
    return _written("prometheus", prometheus) + _written("alertmanager", alertmanager)


def all_series(fleet: Fleet) -> list[Series]:
    found = (vllm_series(fleet) + gpu_series(fleet) + insights_series(fleet) + cadvisor_series(fleet)
             + node_series() + stack_series()
             + _golden("litellm/golden/gateway.prom", "llmwatch-litellm")
             + _golden("langfuse/golden/v4_api.prom", "llmwatch-langfuse")
             + _golden("probe/golden/engines.prom", "llmwatch-probe")
             + _parse(prometheus_metrics(sample_state()).decode(), "litellm")
             + _written("litellm", [("litellm_deployment_failed_fallbacks_total",
                                     {"requested_model": "llama-3.1-70b", "fallback_model": "qwen3-32b"}, True, 1.0)]))
    jobs = sorted({(_label(s, "job"), _label(s, "instance")) for s in found})
    found += [Series(name, (("instance", instance), ("job", job)), False, value) for job, instance in jobs
              for name, value in (("up", 1.0), ("scrape_duration_seconds", 0.05))]
    # One warning firing through the day, so the Overview's alert table has a row.
    found.append(Series("ALERTS", (("alertname", "VllmQueueGrowing"), ("alertstate", "firing"),
                                   ("container", fleet.container(0)), ("severity", "warning")), False, 1.0))
    unique = {(s.name, s.labels): s for s in found}
    return list(unique.values())


# --- the samples -------------------------------------------------------------------------------

def load(t: float) -> float:
    """Traffic relative to the day's mean: lowest at 04:00 UTC, highest at 16:00."""
    return 1.0 + 0.6 * math.sin(2 * math.pi * (t / DAY - 10 / 24))


def cumulative(t: float, start: float) -> float:
    """Seconds of average-load traffic from ``start`` to ``t`` (the integral of load())."""
    def f(x: float) -> float:
        return x + 0.6 * DAY / (2 * math.pi) * -math.cos(2 * math.pi * (x / DAY - 10 / 24))
    return f(t) - f(start)


def _is_constant(series: Series) -> bool:
    name = series.name
    return (name.endswith(("_info", "_bytes_total", "_limit_watts", "_max_hz", "_threshold_celsius")) or name == "up"
            or any(word in name for word in ("_max_", "_min_", "_generation", "_width", "_links", "total_bytes",
                                             "slo_", "_state", "_healthy", "_up", "replicas", "price", "cost_per"))
            or series.value in (0.0, 1.0))


def write_openmetrics(series: list[Series], fleet: Fleet, end: int, out) -> int:
    """The samples of ``series`` over the fleet's hours up to ``end`` as OpenMetrics; the count."""
    start = end - int(fleet.hours * 3600)
    stamps = range(start - start % SCRAPE, end + 1, SCRAPE)
    grown = [cumulative(t, start - 3600) / 3600 for t in stamps]  # an hour of history before the first sample
    shape = [0.8 + 0.2 * load(t) for t in stamps]
    count = 0
    for s in sorted(series, key=lambda s: s.name):
        labels = ",".join(f'{k}="{v}"' for k, v in s.labels)
        head = f"{s.name}{{{labels}}} "
        if s.counter:
            values = [s.value * g for g in grown]
        elif s.name.endswith("_timestamp_seconds") and s.value > 1e9:
            values = list(stamps)
        elif _is_constant(s):
            values = [s.value] * len(stamps)
        else:
            values = [s.value * f for f in shape]
        out.write("".join(f"{head}{v:.6g} {t}\n" for v, t in zip(values, stamps)))
        count += len(values)
    out.write("# EOF\n")
    return count


# --- TSDB blocks and the Prometheus serving them -------------------------------------------------

def promtool(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run([binary("promtool"), *args], capture_output=True, text=True, cwd=cwd)
    if done.returncode:
        raise RuntimeError(f"promtool {' '.join(args[:3])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


class Prometheus(contextlib.AbstractContextManager):
    """The pinned Prometheus serving ``data``, scraping nothing and evaluating no rules. Blocks stay
    2 h long (no compaction into longer ones), so once the imported blocks are merged (compacted())
    nothing runs in the background while queries are timed."""

    def __init__(self, data: Path, log: Path):
        self.port = free_port()
        config = data.parent / "prometheus-bench.yml"
        config.write_text("global:\n  scrape_interval: 30s\n")
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process([binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={data}",
                                "--storage.tsdb.retention.time=30d", f"--web.listen-address=127.0.0.1:{self.port}",
                                "--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h"],
                               log)
        self.client = httpx.Client(base_url=self.url, timeout=120)
        wait_until(self._ready, 300, "Prometheus ready", interval=0.5)

    def _ready(self) -> bool:
        try:
            return self.client.get("/-/ready").status_code == 200
        except httpx.TransportError:
            if self.process.proc.poll() is not None:
                raise RuntimeError(f"Prometheus exited:\n{self.process.log()[-3000:]}") from None
            return False

    def cpu_seconds(self) -> float:
        """Time all of Prometheus' threads have spent on a CPU (Linux schedstat, nanoseconds). On a
        machine others share, a query's wall time includes waiting for a core; this does not."""
        total = 0
        for task in Path(f"/proc/{self.process.proc.pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread may end between listing and reading
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9

    def version(self) -> str:
        return self.client.get("/api/v1/status/buildinfo").json()["data"]["version"]

    def api(self, path: str, **params) -> dict:
        answer = (self.client.get(f"/api/v1/{path}", params=params) if path.startswith("status")
                  else self.client.post(f"/api/v1/{path}", data=params))
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise RuntimeError(f"{path} {params.get('query', '')!r}: {body.get('error', answer.text[:500])}")
        return body["data"]

    def __exit__(self, *exc):
        self.client.close()
        self.process.stop()


def rule_levels() -> list[list[dict]]:
    """The recording rules of every rule file, in levels: a rule comes after the rules whose series it reads."""
    rules = [rule for path in sorted(RULES.glob("*.yml")) for group in yaml.safe_load(path.read_text())["groups"]
             for rule in group["rules"] if "record" in rule]
    names = {rule["record"] for rule in rules}
    level: dict[str, int] = {}

    def depth(rule: dict) -> int:
        if rule["record"] not in level:
            reads = [r for r in rules if r["record"] in names and r is not rule
                     and re.search(rf"(?<![\w:]){re.escape(r['record'])}(?![\w:])", rule["expr"])]
            level[rule["record"]] = 1 + max((depth(r) for r in reads), default=-1)
        return level[rule["record"]]

    levels: list[list[dict]] = []
    for rule in rules:
        d = depth(rule)
        levels += [[] for _ in range(d + 1 - len(levels))]
        levels[d].append(rule)
    return levels


def build(fleet: Fleet, work: Path, end: int, say=print, merge: bool = True) -> Path:
    """TSDB blocks under ``work``/data with the fleet's samples and every recording rule's series;
    ``merge`` waits for Prometheus to merge the overlapping blocks (a minute or more), as it would
    have them after running, so that timings do not include a merge running in the background."""
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    series = all_series(fleet)
    text = work / "fleet.om"
    began = time.monotonic()
    with text.open("w") as out:
        samples = write_openmetrics(series, fleet, end, out)
    say(f"{len(series)} series, {samples / 1e6:.1f} M samples written in {time.monotonic() - began:.0f} s")
    began = time.monotonic()
    # promtool reads the whole text once per block: day-long blocks keep that to a pass or two.
    promtool("tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h", str(text), str(data))
    text.unlink()
    say(f"blocks made in {time.monotonic() - began:.0f} s")
    start = end - int(fleet.hours * 3600)
    for number, rules in enumerate(rule_levels()):
        began = time.monotonic()
        rule_file = work / f"level-{number}.yml"
        rule_file.write_text(yaml.safe_dump({"groups": [{"name": f"level-{number}", "interval": f"{SCRAPE}s",
                                                         "rules": rules}]}, sort_keys=False))
        out = work / f"rules-{number}"
        shutil.rmtree(out, ignore_errors=True)
        with Prometheus(data, work / "prometheus-build.log") as prometheus:
            promtool("tsdb", "create-blocks-from", "rules", f"--url={prometheus.url}", f"--start={start}",
                     f"--end={end}", f"--output-dir={out}", f"--eval-interval={SCRAPE}s", str(rule_file))
        for block in out.iterdir():
            if block.is_dir():
                block.rename(data / block.name)
        say(f"recording rules, level {number}: {len(rules)} rules in {time.monotonic() - began:.0f} s")
    if not merge:
        return data
    began = time.monotonic()
    with Prometheus(data, work / "prometheus-build.log"):
        wait_until(lambda: not overlapping(data), 1800, "imported blocks merged", interval=2)
    say(f"blocks merged in {time.monotonic() - began:.0f} s")
    return data


def overlapping(data: Path) -> bool:
    """Whether two blocks cover the same time (the raw samples' and a rule level's, before the merge)."""
    spans = sorted((meta["minTime"], meta["maxTime"]) for meta in
                   (json.loads(path.read_text()) for path in data.glob("*/meta.json")))
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))


# --- the queries --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Panel:
    board: str
    title: str
    expr: str
    instant: bool
    time_from: str | None
    min_step: float  # seconds; Grafana's "Min step" of the target, 0 when unset
    max_points: int = PANEL_PX  # Grafana's "Max data points": the panel's, else its width in pixels


def seconds(duration: str) -> float:
    """A Grafana/Prometheus duration ("30s", "5m", "1h") in seconds."""
    number, unit = re.fullmatch(r"(\d+)([smhd])", duration).groups()
    return int(number) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


# Panels that read LiteLLM's own Prometheus callback (its latency histograms), which the synthetic
# fleet does not model: the bench runs their queries but cannot require data from them.
NOT_MODELLED = {
    ("LiteLLM", "Total vs LLM API time"): "LiteLLM's litellm_*_latency_metric histograms",
    ("LiteLLM", "Proxy overhead"): "LiteLLM's litellm_overhead_latency_metric histogram",
    ("LiteLLM", "Time to first token through the proxy"): "LiteLLM's time-to-first-token histogram",
}


def may_be_empty(panel: Panel) -> bool:
    """A panel whose series need a feature the data does not have: its query must run, and may return nothing."""
    return (panel.board, panel.title) in NEEDS_A_FEATURE or (panel.board, panel.title) in NOT_MODELLED


def board_panels(board: dict) -> list[Panel]:
    return [Panel(board["title"], panel["title"], target["expr"], bool(target.get("instant")), panel.get("timeFrom"),
                  seconds(target["interval"]) if target.get("interval") else 0.0,
                  panel.get("maxDataPoints") or PANEL_PX)
            for panel in panels(board) for target in panel["targets"]
            if target.get("datasource", panel["datasource"])["type"] == "prometheus"]


_ROUNDED = [(0.015, 0.01), (0.035, 0.02), (0.075, 0.05), (0.15, 0.1), (0.35, 0.2), (0.75, 0.5), (1.5, 1), (3.5, 2),
            (7.5, 5), (12.5, 10), (17.5, 15), (25, 20), (45, 30), (90, 60), (210, 120), (450, 300), (750, 600),
            (1050, 900), (1500, 1200), (2700, 1800), (5400, 3600), (9000, 7200), (16200, 10800), (32400, 21600),
            (86400, 43200)]


def grafana_interval(range_s: float, width: int = PANEL_PX, minimum: float = SCRAPE) -> float:
    """$__interval (and the step) as Grafana computes it: the range over the panel's width, rounded its
    way (kbn.roundInterval), at least ``minimum``: the datasource's scrape interval or the target's min step."""
    raw = range_s / width
    rounded = next((value for limit, value in _ROUNDED if raw < limit), 86400)
    return max(rounded, minimum)


def builtins(range_s: float, min_step: float = 0.0, width: int = PANEL_PX) -> dict[str, str]:
    interval = grafana_interval(range_s, width, minimum=max(SCRAPE, min_step))
    return {"__interval": f"{interval:g}s", "__rate_interval": f"{max(interval + SCRAPE, 4 * SCRAPE):g}s",
            "__range": f"{int(range_s)}s", "__range_s": str(int(range_s)), "__auto": f"{interval:g}s"}


def expand(expr: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]",
                  lambda m: values[m.group(1) or m.group(2) or m.group(3)], expr)


def panel_range(panel: Panel, end: int, hours: float) -> tuple[int, int]:
    """The panel's time range: the board's, unless the panel overrides it (``now-24h``, ``now/d``)."""
    if panel.time_from == "now/d":
        return end - end % 86400, end
    if panel.time_from and (m := re.fullmatch(r"now-(\d+)([hd])", panel.time_from)):
        return end - int(m.group(1)) * (3600 if m.group(2) == "h" else 86400), end
    return end - int(hours * 3600), end


def variable_choices(prometheus: Prometheus, board: dict) -> list[dict[str, str]]:
    """The variables at "All" and at one value (each its query's first value, given the ones before it)."""
    variables = [v for v in board["templating"]["list"] if v["type"] == "query"
                 and v["datasource"]["type"] == "prometheus"]
    every = {v["name"]: ".*" for v in variables}
    one = dict(every)
    for variable in variables:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        series = prometheus.api("series", **{"match[]": expand(match.group(1), one)})
        values = sorted({s[match.group(2)] for s in series if match.group(2) in s})
        if not values and variable["name"] not in MAY_BE_EMPTY:
            raise RuntimeError(f"{board['title']}: variable {variable['name']} has no values")
        one[variable["name"]] = prometheus_regex(values[0]) if values else ".*"
    return [every, one] if variables else [every]


@dataclass
class Timed:
    panel: Panel
    choice: str  # "All" or "one"
    expr: str
    seconds: float
    series: int
    empty: bool
    samples: int  # samples the query read (Prometheus' totalQueryableSamples): the work, whatever the machine
    cpu_seconds: float  # Prometheus' own time on a CPU for the query: what waiting for a shared CPU does not add


def has_values(data: dict) -> bool:
    if data["resultType"] == "scalar":
        return not math.isnan(float(data["result"][1]))
    for result in data["result"]:
        points = result.get("values") or [result["value"]]
        if any(not math.isnan(float(v)) for _, v in points):
            return True
    return False


def time_board(prometheus: Prometheus, board: dict, end: int, hours: float, runs: int = 3) -> list[Timed]:
    timed = []
    for choice, values in zip(("All", "one"), variable_choices(prometheus, board)):
        for panel in board_panels(board):
            start, stop = panel_range(panel, end, hours)
            every = {**builtins(stop - start, panel.min_step, panel.max_points), **values}
            expr = expand(panel.expr, every)
            if panel.instant:
                params = {"query": expr, "time": str(stop), "stats": "all"}
                path = "query"
            else:
                step = int(grafana_interval(stop - start, panel.max_points, minimum=max(SCRAPE, panel.min_step)))
                params = {"query": expr, "start": str(start - start % step), "end": str(stop - stop % step),
                          "step": str(step), "stats": "all"}
                path = "query_range"
            took, cpu, data = [], [], None
            for _ in range(runs):
                began, began_cpu = time.perf_counter(), prometheus.cpu_seconds()
                data = prometheus.api(path, **params)
                took.append(time.perf_counter() - began)
                cpu.append(prometheus.cpu_seconds() - began_cpu)
            count = len(data["result"]) if data["resultType"] != "scalar" else 1
            samples = data.get("stats", {}).get("samples", {}).get("totalQueryableSamples", 0)
            timed.append(Timed(panel, choice, expr, statistics.median(took), count, not has_values(data), samples,
                               statistics.median(cpu)))
    return timed


def boards(folder: Path = DASHBOARDS) -> dict[str, dict]:
    """The boards with Prometheus queries, by file name."""
    found = {}
    for path in sorted(folder.rglob("*.json")):
        board = json.loads(path.read_text())
        if board_panels(board):
            found[path.stem] = board
    return found


def machine_load() -> str:
    """The 1, 5 and 15 minute load averages and the cores they share, for quoting beside timings."""
    return f"load {' '.join(Path('/proc/loadavg').read_text().split()[:3])} on {os.cpu_count()} cores"
