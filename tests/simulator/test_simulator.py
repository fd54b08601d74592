"""The simulator's semantics, config validation and command line."""

import json
import math

import numpy as np
import pytest
import yaml
from hypothesis import given, settings, strategies as st

from llmwatch.cli import main as cli_main
from llmwatch.queueing import capacity, engine
from llmwatch.queueing.config import ConfigError, TokenDist, parse


def base(**over):
    raw = {"mode": "mono", "sim_seconds": 200.0, "warmup_seconds": 20.0, "random_seed": 3,
           "arrival": {"rate_per_s": 2.0},
           "prompt_tokens": {"mode": "real_mean_std", "mean": 1000, "std": 400, "min_value": 8},
           "output_tokens": {"mode": "real_p50_p90", "p50": 100, "p90": 300},
           "cluster_mono": {"gpus": 2, "prefill_tokens_per_s": 5000, "decode_tokens_per_s": 500},
           "cluster_disagg": {"prefill_gpus": 1, "decode_gpus": 1, "prefill_tokens_per_s": 5000,
                              "decode_tokens_per_s": 500}}
    raw.update(over)
    return raw


def test_idle_ttft_is_prefill_plus_one_decode_token():
    # One request at a time in an idle cluster: no queueing, TTFT = prompt / prefill + 1 / decode.
    config = parse(base(arrival={"rate_per_s": 0.001}, sim_seconds=20000.0, warmup_seconds=0.0,
                        prompt_tokens={"mode": "constant", "value": 1000},
                        output_tokens={"mode": "constant", "value": 50}))
    for mode in ("mono", "disagg"):
        result = engine.run(parse(base(**{**config_raw(config), "mode": mode})))
        assert result.completed > 5
        assert result.ttft_p50_s == pytest.approx(1000 / 5000 + 1 / 500)
        assert result.queue_wait_mean_s == pytest.approx(0.0, abs=1e-9)


def config_raw(config):
    return {"sim_seconds": config.sim_seconds, "warmup_seconds": config.warmup_seconds,
            "arrival": {"rate_per_s": config.arrival_rate_per_s},
            "prompt_tokens": {"mode": "constant", "value": config.prompt_tokens.value},
            "output_tokens": {"mode": "constant", "value": config.output_tokens.value}}


def test_mono_gpu_is_held_through_decode_but_disagg_prefill_is_not():
    # Long decodes: on a monolithic GPU the next request waits for the whole decode; the
    # disaggregated prefill GPU is free again after the prefill, so TTFT waits only on decode.
    raw = base(arrival={"rate_per_s": 0.3}, prompt_tokens={"mode": "constant", "value": 100},
               output_tokens={"mode": "constant", "value": 1000},
               cluster_mono={"gpus": 1, "prefill_tokens_per_s": 10000, "decode_tokens_per_s": 500},
               cluster_disagg={"prefill_gpus": 1, "decode_gpus": 1, "prefill_tokens_per_s": 10000,
                               "decode_tokens_per_s": 500}, sim_seconds=3000.0)
    mono = engine.run(parse({**raw, "mode": "mono"}))
    disagg = engine.run(parse({**raw, "mode": "disagg"}))
    # Same single decode bottleneck (2 s per request at 0.3/s: 60 % busy), same arrivals.
    assert mono.gpu_utilization == pytest.approx(0.6, rel=0.05)
    assert disagg.decode_utilization == pytest.approx(0.6, rel=0.05)
    assert disagg.prefill_utilization == pytest.approx(0.003, rel=0.1)
    # Disaggregated TTFT still queues for the decode GPU: within a prefill of the monolithic TTFT.
    assert abs(disagg.ttft_mean_s - mono.ttft_mean_s) < 0.011 + 0.05 * mono.ttft_mean_s


def test_same_seed_same_result_other_seed_other_result():
    a, b = engine.run(parse(base())), engine.run(parse(base()))
    c = engine.run(parse(base(random_seed=4)))
    assert a == b
    assert a.ttft_p99_s != c.ttft_p99_s


def test_warmup_requests_are_not_measured():
    full = engine.run(parse(base(warmup_seconds=0.0)))
    late = engine.run(parse(base(warmup_seconds=100.0)))
    assert late.completed < full.completed
    assert late.completed == pytest.approx(full.completed / 2, rel=0.2)


def test_overload_queue_grows_and_throughput_caps_at_capacity():
    # 2 GPUs, mean service ~0.2 + ~0.27 s: capacity ~4.3/s; 8/s arrive.
    result = engine.run(parse(base(arrival={"rate_per_s": 8.0})))
    assert result.offered_load > 1
    assert result.gpu_utilization > 0.97
    assert result.throughput_rps < 5
    assert result.ttft_p50_s > 10


def test_token_distributions_have_the_requested_moments():
    rng = np.random.default_rng(0)
    mean_std = TokenDist.lognormal_mean_std(1000, 400, min_value=0).sample(rng, 200_000)
    assert mean_std.mean() == pytest.approx(1000, rel=0.01) and mean_std.std() == pytest.approx(400, rel=0.03)
    p = TokenDist.lognormal_p50_p90(200, 600, min_value=0).sample(rng, 200_000)
    assert np.percentile(p, 50) == pytest.approx(200, rel=0.02) and np.percentile(p, 90) == pytest.approx(600, rel=0.02)
    log = parse(base(prompt_tokens={"mode": "log", "mu": 5.0, "sigma": 0.5})).prompt_tokens
    assert log.mean == pytest.approx(math.exp(5.0 + 0.125))
    assert TokenDist.lognormal_mean_std(300, 0).kind == "constant"
    assert TokenDist("constant", value=0.5, min_value=4).sample(rng, 3).tolist() == [4, 4, 4]


def test_mode_is_inferred_from_keys_for_old_configs():
    config = parse(base(prompt_tokens={"mu": 6.0, "sigma": 1.0}, output_tokens={"p50": 10, "p90": 20}))
    assert config.prompt_tokens.mu == 6.0
    assert config.output_tokens.mu == pytest.approx(math.log(10))


def test_every_bad_key_is_named_at_once():
    raw = base(sim_seconds=-1, arrival={"rate_per_s": "fast"}, bogus=1,
               prompt_tokens={"mode": "real_p50_p90", "p50": 500, "p90": 100},
               output_tokens={"mode": "nope"}, cluster_mono={"gpus": 1.5, "prefill_tokens_per_s": 0})
    with pytest.raises(ConfigError) as e:
        parse(raw)
    text = "\n".join(e.value.problems)
    for fragment in ("sim_seconds: must be > 0", "arrival.rate_per_s: must be a number", "bogus: unknown key",
                     "prompt_tokens.p90: must be >= p50", "output_tokens.mode: must be one of",
                     "cluster_mono.gpus: must be a whole number", "cluster_mono.prefill_tokens_per_s: must be > 0",
                     "cluster_mono.decode_tokens_per_s: missing"):
        assert fragment in text


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["mode", "mean", "std", "p50", "p90", "mu", "sigma", "value", "gpus",
                                         "rate_per_s", "sim_seconds", "arrival", "prompt_tokens", "cluster_mono",
                                         "min_value", "warmup_seconds"]), inner, max_size=6), max_leaves=20))
def test_any_document_parses_or_raises_config_error(document):
    try:
        parse(document)
    except ConfigError as e:
        assert e.problems


def write(tmp_path, raw):
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_json_has_the_documented_keys(tmp_path, capsys):
    assert cli_main(["simulate", "--config", str(write(tmp_path, base())), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("ttft_mean_s", "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "throughput_rps", "gpu_utilization",
                "completed"):
        assert isinstance(out[key], (int, float)), key
    assert out == engine.run(parse(base())).as_dict()


def test_cli_compare_sweep_and_plots(tmp_path, capsys):
    path = write(tmp_path, base())
    assert cli_main(["simulate", "compare", "--config", str(path), "--json", "--plot", str(tmp_path / "c.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"mono", "disagg"} and "decode_utilization" in out["disagg"]
    assert cli_main(["simulate", "sweep", "--config", str(path), "--rates", "1:3:3", "--prefill-rates", "2500,5000",
                     "--requests", "300", "--json", "--plot", str(tmp_path / "s.png")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["prefill_tokens_per_s"], r["arrival_rate_per_s"]) for r in rows] == \
        [(2500, 1), (2500, 2), (2500, 3), (5000, 1), (5000, 2), (5000, 3)]
    # More load, more waiting; a faster prefill, a shorter TTFT.
    assert rows[0]["ttft_p90_s"] < rows[2]["ttft_p90_s"]
    assert rows[3]["ttft_p50_s"] < rows[0]["ttft_p50_s"]
    for png in ("c.png", "s.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_bad_config_and_exits_2(tmp_path, capsys):
    assert cli_main(["simulate", "--config", str(write(tmp_path, base(mode="both")))]) == 2
    assert "mode: must be one of mono, disagg" in capsys.readouterr().err
    assert cli_main(["simulate", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    no_disagg = base()
    del no_disagg["cluster_disagg"]
    assert cli_main(["simulate", "compare", "--config", str(write(tmp_path, no_disagg))]) == 2
    assert "needs both cluster_mono and cluster_disagg" in capsys.readouterr().err


def test_capacity_is_the_edge_of_the_slo():
    config = parse(base())
    rate = capacity.max_rate(config, slo_seconds=1.0, requests=3000)
    assert 0 < rate < capacity.saturation_rate(config)
    assert capacity.ttft_quantile(config, rate, 0.95, 3000) <= 1.0
    assert capacity.ttft_quantile(config, rate * 1.1, 0.95, 3000) > 1.0
    # Prefill alone slower than the SLO: nothing fits.
    assert capacity.max_rate(config, slo_seconds=0.05) == 0.0
