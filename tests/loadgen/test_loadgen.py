"""The load generator against the simulated engine and against servers that misbehave."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from llmwatch.simulation.demo.engine import LiveEngine
from llmwatch.simulation.demo.servers import DemoVllmServer
from llmwatch.tools.loadgen import cli
from llmwatch.tools.loadgen.plots import ttft_curve
from llmwatch.tools.loadgen.run import Planned, Record, plan, prompt_text
from llmwatch.upstreams.streaming import Outcome
from llmwatch.queueing.config import MonoCluster, load
from llmwatch.queueing.engine import workload
from llmwatch.simulation.vllm import Engine
from tests.fakes.streaming import CUT, ScriptedStreamServer, openai_events
from tests.procs import REPO


def results(out: Path) -> tuple[dict, list[dict], Path]:
    (folder,) = out.iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    with (folder / "requests.csv").open() as f:
        rows = list(csv.DictReader(f))
    return summary, rows, folder


def fast_engine(model: str, slots: int = 64, decode_tokens_per_s: float = 1000.0,
                batch_cost: float = 0.03) -> DemoVllmServer:
    return DemoVllmServer(LiveEngine(Engine(model_name=model), MonoCluster(slots, 100000.0, decode_tokens_per_s),
                                     batch_cost=batch_cost), "0.28.0")


def test_compares_two_endpoints_on_the_same_requests(tmp_path, capsys):
    # decode steps of 0.5 s whatever the batch: each token 0.5 s after the last, so timing the wrong
    # event is off by 0.5 s (long enough that a loaded machine's scheduling delays stay well below it)
    with fast_engine("qwen3-32b", decode_tokens_per_s=2.0, batch_cost=0) as a, \
            fast_engine("llama", decode_tokens_per_s=2.0, batch_cost=0) as b:
        code = cli.main(["--url", f"vllm-a={a.url}", "--url", f"vllm-b={b.url}", "--rate", "20", "--duration", "1",
                         "--prompt-tokens", "100", "--output-tokens", "3", "--seed", "3", "--quiet",
                         "--slo-ttft", "2", "--slo-tpot", "1", "--out", str(tmp_path)])
    assert code == 0
    summary, rows, folder = results(tmp_path)
    n = len(plan(cli.workload_config(cli.parser().parse_args(
        ["--url", "http://x", "--rate", "20", "--duration", "1", "--prompt-tokens", "100", "--output-tokens", "3",
         "--seed", "3"]))))
    for name in ("vllm-a", "vllm-b"):
        result = summary["endpoints"][name]
        assert result["requests"] == result["ok"] == n and result["errors"] == {}
        # the rest of the running step (0 to 0.5 s, 0.25 s typically), then prefill 130 tokens at 100k/s
        # and one decode step of 0.5 s, plus loopback: the second token would be at 1.0 s or later
        assert 0.5013 <= result["ttft_seconds"]["p50"] < 0.5013 + 0.5
        assert result["goodput_ratio"] == 1.0
    assert summary["endpoints"]["vllm-a"]["model"] == "qwen3-32b"  # picked from /v1/models
    assert len(rows) == 2 * n and {r["output_tokens"] for r in rows} == {"3"}
    assert (folder / "latency.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "TTFT p95" in printed and "goodput" in printed and str(folder) in printed


@pytest.mark.parametrize("delay", [0.3])
def test_measured_ttft_is_the_injected_delay(tmp_path, delay):
    # each token a delay after the last: timing the wrong event would be off by a whole delay
    with ScriptedStreamServer([delay] + openai_events(3, gap=delay)) as server:
        assert cli.main(["--url", server.url, "--model", "m", "--rate", "10", "--duration", "1", "--quiet",
                         "--no-plot", "--out", str(tmp_path)]) == 0
    summary, rows, _ = results(tmp_path)
    (result,) = summary["endpoints"].values()
    ttfts = [float(r["ttft_s"]) for r in rows]
    assert min(ttfts) >= delay and result["ttft_seconds"]["p50"] < 2 * delay
    # requests leave on their planned times: a scheduler that waited for answers lags by seconds;
    # a busy 2-core machine may delay a send by a scheduling slice or two
    assert 0 <= result["send_lag_seconds"]["p99"] < 0.25


def test_failures_are_counted_by_outcome_not_fatal(tmp_path):
    with ScriptedStreamServer(openai_events(3)[:2] + [CUT]) as cut, \
            ScriptedStreamServer([b"data: nonsense\n\n"]) as garbage, \
            ScriptedStreamServer(openai_events(3)[:2] + [2.0]) as stall:
        code = cli.main(["--url", f"cut={cut.url}", "--url", f"garbage={garbage.url}", "--url", f"stall={stall.url}",
                         "--model", "m", "--rate", "5", "--duration", "1", "--stall", "0.3", "--seed", "1",
                         "--quiet", "--no-plot", "--out", str(tmp_path)])
    assert code == 0
    summary, _, _ = results(tmp_path)
    errors = {name: r["errors"] for name, r in summary["endpoints"].items()}
    n = summary["endpoints"]["cut"]["requests"]
    assert errors == {"cut": {"stream_error": n}, "garbage": {"malformed": n}, "stall": {"stalled": n}}
    assert all(r["goodput_ratio"] == 0 and r["error_ratio"] == 1 for r in summary["endpoints"].values())


def test_the_latency_curve_counts_failures():
    """Half the requests failed: the TTFT curve of the other half ends at 0.5, not at 1.0."""
    def record(ttft):
        outcome = Outcome("ok", ttft=ttft, e2e=ttft) if ttft is not None else Outcome("timeout")
        return Record(Planned(0.0, 10, 10), 0.0, outcome)

    rows = [record(t) for t in (0.4, 0.1, 0.3, 0.2)] + [record(None)] * 4
    ttft, share, failed = ttft_curve(rows)
    assert list(ttft) == [0.1, 0.2, 0.3, 0.4]
    assert list(share) == [0.125, 0.25, 0.375, 0.5]
    assert failed == 0.5
    assert ttft_curve([record(None)])[2] == 1.0 and ttft_curve([])[2] == 0.0


def test_the_plan_is_the_simulators_workload():
    config = load(REPO / "config" / "simulator" / "example.yaml")
    planned = plan(config)
    arrivals, prompt, output = workload(config)
    assert [p.at for p in planned] == list(arrivals)
    assert [p.prompt_tokens for p in planned] == [int(round(v)) for v in prompt]
    assert np.mean([p.output_tokens for p in planned]) == pytest.approx(np.mean(output), rel=0.01)


def test_prompts_have_about_the_tokens_asked_and_differ():
    text = prompt_text(1300, 7)
    assert len(text.split()) == 1000 and text != prompt_text(1300, 8)


@pytest.mark.parametrize("args,message", [
    (["--url", "localhost:8000"], "expected URL or NAME=URL"),
    (["--url", "http://x", "--prompt-tokens", "mean=5"], "bad token distribution"),
    (["--url", "http://x", "--rate", "-1"], "must be a positive number"),
    (["--url", "http://x", "--api", "grpc"], "invalid choice"),
])
def test_bad_arguments_are_named(args, message, capsys):
    with pytest.raises(SystemExit):
        cli.main(args)
    assert message in capsys.readouterr().err


def test_unknown_names_and_unreachable_model_lists_are_named(tmp_path, capsys):
    assert cli.main(["--url", "a=http://127.0.0.1:9", "--model", "m", "--model-of", "nope=x",
                     "--out", str(tmp_path)]) == 2  # bad input
    assert "unknown endpoints: nope" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="give --model"):
        cli.main(["--url", "a=http://127.0.0.1:9", "--out", str(tmp_path)])
