"""The demo pages no one: at its default load only the Watchdog fires, over longer than every `for`
of the alerts its series feed; at --load 4 (BREACH_LOAD) the TTFT alert fires, as documented.

The demo's engines are replayed in simulated time (LiveEngine.serve_simulated, the demo's own
load plan and seed), the llmwatch vLLM exporter scrapes their /metrics every 30 simulated seconds
(a clock injected), and the series it serves, labelled as Prometheus labels the demo's targets,
become a promtool test over every committed rule file. promtool writes ALERTS as it evaluates,
so one query over the whole run says which alerts ever fired.

Covered: every alert on vLLM's and the vLLM exporter's series (instance, engine, queue, KV cache,
preemptions, TTFT/TPOT, errors) and the TTFT/error burn rates. Not covered, because the demo does
not produce their series in simulated time: the GPU alerts (the simulated GPU node), LiteLLM,
Langfuse, probe, insights, host/container and monitoring alerts.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from llmwatch.core.fetch import Fetcher
from llmwatch.exporters.vllm.collector import ACCEPT, VllmExporter
from llmwatch.simulation import demo
from llmwatch.simulation.demo.engine import LiveEngine
from llmwatch.simulation.vllm import Engine, FakeVllmServer
from llmwatch.upstreams.vllm_discovery import parse_static_targets
from tests.conftest import require_binary
from tests.procs import render

pytestmark = pytest.mark.integration  # promtool

RULES = Path(__file__).resolve().parents[2] / "config" / "prometheus" / "rules"
SCRAPE = 30.0  # seconds, as prometheus.yml scrapes
# Two hours: eight times the longest `for` of the covered alerts (15 m) and twice the fast burn
# rates' hour window (the slow burns' 6-hour window sees these two hours).
MINUTES = 120
# Enough for the TTFT alert at the breach load: its 5-minute window and 10-minute `for`.
BREACH_MINUTES = 25
# what Prometheus adds to the demo's vLLM exporter's series (stack-config's demo targets)
TARGET_LABELS = 'instance="demo-vllm-exporter:9902",job="llmwatch-vllm",simulated="true"'
# the series the rules read from the vLLM exporter (its scrape statistics are left out)
KEEP = ("vllm:", "http_requests_total", "llmwatch_vllm_")


class InProcessFetcher(Fetcher):
    """The vLLM exporter's fetcher, answered by a simulated server's own handler without a socket:
    the exporter does all it does on a scrape, hundreds of times in a few seconds."""

    def __init__(self, server: FakeVllmServer):
        self.server = server
        super().__init__("vllm", {"Accept": ACCEPT}, 8 << 20)

    async def _make_client(self, headers: dict[str, str]) -> httpx.AsyncClient:
        def answer(request: httpx.Request) -> httpx.Response:
            status, content_type, body = self.server.answer(request.url.raw_path.decode(), dict(request.headers))
            return httpx.Response(status, headers={"Content-Type": content_type}, content=body)

        return httpx.AsyncClient(headers=headers, transport=httpx.MockTransport(answer))


def arrivals(load: float, seconds: float) -> list[list[tuple[float, int, int]]]:
    """The demo's load plan (its seed, its minute windows), per engine."""
    rng = np.random.default_rng(demo.LOAD_SEED)
    per_engine: list[list] = [[] for _ in demo.ENGINES]
    start = 0.0
    while start < seconds:
        for t, engine, prompt, output in demo.load_plan(rng, load):
            per_engine[engine].append((start + t, prompt, output))
        start += demo.LOAD_WINDOW
    return per_engine


def record(load: float, minutes: int) -> dict[str, list[float | None]]:
    """Series text -> its value at every scrape (None: absent), as Prometheus would store them."""
    steps = int(minutes * 60 / SCRAPE)
    values: dict[str, list[float | None]] = defaultdict(lambda: [None] * (steps + 1))
    for spec, planned in zip(demo.ENGINES, arrivals(load, minutes * 60)):
        engine = Engine(model_name=spec.model, root=spec.root, started=0.0)
        live = LiveEngine(engine, spec.cluster, slots=spec.slots)
        now = [0.0]
        server = FakeVllmServer(spec.version, [engine])  # answers in-process, never started
        with contextlib.closing(server), contextlib.closing(VllmExporter(
                static_targets=parse_static_targets([{"name": spec.container, "url": f"http://{spec.container}:8000"}]),
                discovery=None, fetcher=InProcessFetcher(server), budget=5.0, clock=lambda: now[0])) as exporter:

            def scrape(t: float) -> None:
                now[0] = t
                for line in render(exporter).splitlines():
                    if line.startswith(KEEP):
                        series, value = line.rsplit(" ", 1)
                        name, _, labels = series.partition("{")
                        key = f"{name}{{{labels.rstrip('}') + ',' if labels else ''}{TARGET_LABELS}}}"
                        values[key][round(t / SCRAPE)] = float(value)

            live.serve_simulated(planned, until=minutes * 60, every=SCRAPE, observe=scrape)
    return values


def fired(load: float, minutes: int, tmp_path: Path, expected: list[str]) -> subprocess.CompletedProcess:
    """promtool over every rule file with the recorded series; passes when the alerts that ever
    fired are exactly ``expected`` (alertname/severity)."""
    series = [{"series": key, "values": " ".join("_" if v is None else repr(float(v)) for v in vals)}
              for key, vals in sorted(record(load, minutes).items())]
    test = {
        "rule_files": [str(p) for p in sorted(RULES.glob("*.yml"))],
        "evaluation_interval": "30s",
        "tests": [{
            "interval": "30s",
            "input_series": series,
            "promql_expr_test": [{
                "expr": f'count by (alertname, severity) (max_over_time(ALERTS{{alertstate="firing"}}[{minutes}m]))',
                "eval_time": f"{minutes}m",
                "exp_samples": [{"labels": "{alertname=\"%s\", severity=\"%s\"}" % tuple(e.split("/")), "value": 1}
                                for e in expected],
            }],
        }],
    }
    (tmp_path / "demo_test.yml").write_text(yaml.safe_dump(test, width=1 << 20))
    return subprocess.run([require_binary("promtool"), "test", "rules", "demo_test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_the_demo_at_its_default_load_fires_only_the_watchdog(tmp_path):
    result = fired(demo.DEFAULT_LOAD, MINUTES, tmp_path, ["Watchdog/none"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_documented_breach_load_fires_the_ttft_alert(tmp_path):
    result = fired(demo.BREACH_LOAD, BREACH_MINUTES, tmp_path, ["Watchdog/none"])
    # the run fails on the expectation of silence, and names what fired: the llama's TTFT among them
    output = result.stdout + result.stderr
    assert result.returncode != 0
    got = output.split("got:", 1)[1]
    assert 'alertname="VllmTtftP95High", severity="critical"' in got, output
