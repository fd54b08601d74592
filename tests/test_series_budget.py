"""Series budgets: each exporter's series count for the reference fleet stays within docs/metrics.md's table.

The reference fleet (docs/metrics.md, "Series budget"): 10 vLLM servers (newest version, one
engine each, a model each), 8 GPUs serving two models, 20 model groups in LiteLLM probed through it
plus the 10 engines probed directly. A change that adds series per GPU, per engine or per probed
model shows here first, before it shows in Prometheus' memory.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmwatch.core.fetch import Reply
from llmwatch.exporters.probe import StaticTarget
from llmwatch.exporters.probe.targets import TargetSource
from llmwatch.exporters.vllm.collector import VllmExporter
from llmwatch.simulation.litellm import FakeLitellmServer, deployment, sample_state
from llmwatch.simulation.vllm import NEWEST, busy_engine, render_metrics
from llmwatch.upstreams.vllm_discovery import Target
from tests.fakes.streaming import ScriptedStreamServer, openai_events
from tests.gpu.scenarios import serving_node
from tests.litellm.scenarios import scrape as litellm_scrape
from tests.probe.scenarios import run_round
from tests.procs import render

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
ENGINES, MODEL_GROUPS = 10, 20


def budgets() -> dict[str, int]:
    """exporter -> series budget, from the table under "## Series budget" in docs/metrics.md."""
    section = DOCS.read_text().split("## Series budget", 1)[1].split("\n## ", 1)[0]
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^\| `(\w+)` \| ([\d,]+) \|", section, re.MULTILINE)}


def series(text: str) -> int:
    return sum(len(family.samples) for family in text_string_to_metric_families(text))


class CannedFetcher:
    """The fetcher's interface: every vLLM server answers /metrics with its body, the rest with {}."""

    def __init__(self, bodies: dict[str, bytes]):
        self.bodies = bodies

    def as_completed(self, urls, timeout):
        for i, url in enumerate(urls):
            base, _, path = url.rpartition("/")
            yield i, Reply(200, self.bodies[base] if path == "metrics" else b'{"version": "%s"}' % NEWEST.encode())

    def close(self):
        pass


def vllm_fleet(tmp_path: Path) -> str:
    targets = [Target(f"vllm-{i}", f"http://vllm-{i}:8000", "static") for i in range(ENGINES)]
    bodies = {t.url: render_metrics(NEWEST, [busy_engine(seed=i, model_name=f"org/model-{i}")]).encode()
              for i, t in enumerate(targets)}
    exporter = VllmExporter(static_targets=targets, discovery=None, fetcher=CannedFetcher(bodies), budget=5.0)
    render(exporter)
    return render(exporter)


def gpu_node(tmp_path: Path) -> str:
    _, exporter = serving_node(tmp_path)
    with contextlib.closing(exporter):
        render(exporter)  # the first scrape primes GPM
        return render(exporter)


def probe_fleet(tmp_path: Path) -> str:
    """LiteLLM's 20 groups stand as 20 OpenAI-compatible targets: the same series per target and
    model, and per-target series counted 20 times instead of once (the budget errs on the safe side)."""
    with contextlib.ExitStack() as stack:
        engines = [stack.enter_context(ScriptedStreamServer(openai_events(4), models=[f"org/model-{i}"]))
                   for i in range(ENGINES)]
        gateway = stack.enter_context(ScriptedStreamServer(openai_events(4)))
        source = TargetSource(
            static=[StaticTarget(f"litellm-{g}", gateway.url, "openai", f"group-{g}", "") for g in range(MODEL_GROUPS)],
            vllm_static=[Target(f"vllm-{i}", e.url, "static") for i, e in enumerate(engines)])
        return run_round(source, ENGINES + MODEL_GROUPS)


def litellm_proxy(tmp_path: Path) -> str:
    """The simulated proxy's teams, users and 30 keys, with 20 model groups of one deployment each
    (the reference fleet's 10 engines, two groups each), every group with requests, top 5 spenders."""
    state = sample_state()
    state.deployments = [deployment(f"group-{g}", f"org/model-{g % ENGINES}", f"http://vllm-{g % ENGINES}:8000/v1",
                                    f"d-{g}", input_cost=2e-7, output_cost=6e-7) for g in range(MODEL_GROUPS)]
    state.requests = {f"group-{g}": (100, 1) for g in range(MODEL_GROUPS)}
    state.healthy = {(d["model"], d["api_base"]): True for d in state.deployments}
    with FakeLitellmServer("1.108.7", state) as server:
        return litellm_scrape(server, top_n=5, deployment_health=True)


FLEET = {"vllm": vllm_fleet, "gpu": gpu_node, "probe": probe_fleet, "litellm": litellm_proxy}


@pytest.mark.parametrize("exporter", sorted(FLEET))
def test_series_within_budget(exporter, tmp_path):
    budget = budgets()[exporter]
    count = series(FLEET[exporter](tmp_path))
    assert count <= budget, (f"{exporter}: {count} series for the reference fleet, over its budget of {budget} "
                             "(docs/metrics.md, Series budget): trim, or raise the budget there with the reason")
    print(f"{exporter}: {count} series, budget {budget}")
