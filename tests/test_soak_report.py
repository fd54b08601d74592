"""The soak test's verdict on synthetic scrapes: what counts as a problem and what does not."""

from __future__ import annotations

import math

from llmwatch.simulation.soak_report import (
    SCHEDULE, Resources, Scrape, Selector, format_report, judge_phase, parse_exposition, percentile, phase, report)

VLLM_UP = ("llmwatch_vllm_up", frozenset({("container", "vllm-soak")}))


def scrape(started: float, up: float | None, *, status: int = 200, seconds: float = 0.01, reasons=None,
           exporter: str = "vllm") -> Scrape:
    ups = {} if up is None else {VLLM_UP: up}
    return Scrape(exporter, started, seconds, status, ups, reasons or {})


def test_the_exposition_gives_up_series_and_error_reasons():
    text = "\n".join([
        "# HELP llmwatch_vllm_up 1 when ...",
        'llmwatch_vllm_up{container="vllm-soak"} 0.0',
        'llmwatch_vllm_target_errors_total{container="vllm-soak",reason="timeout"} 3.0',
        'llmwatch_vllm_scrape_errors_total{reason="timeout"} 2.0',
        'llmwatch_probe_requests_total{model="m",outcome="ok",target="t"} 9.0',
        'llmwatch_probe_requests_total{model="m",outcome="stalled",target="t"} 1.0',
        'llmwatch_gpu_nvml_up 1.0',
        'vllm:num_requests_running{model_name="m"} 4.0',
    ])
    ups, reasons = parse_exposition(text)
    assert ups == {VLLM_UP: 0.0, ("llmwatch_gpu_nvml_up", frozenset()): 1.0}
    assert reasons == {"timeout": 5.0, "probe_stalled": 1.0}


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert math.isnan(percentile([], 50))


def test_a_fault_is_judged_after_its_settle_window():
    hang = phase("hang", "hang", {}, start=10.0, end=20.0)
    scrapes = [scrape(11.0, 1.0),  # settling: not judged
               scrape(15.0, 0.0, reasons={"timeout": 0.0}),
               scrape(16.0, 0.0, reasons={"timeout": 2.0}),
               scrape(17.0, 1.0, reasons={"timeout": 2.0})]
    result = judge_phase("vllm", hang, scrapes, settle=4.0)
    assert (result.scrapes, result.judged, result.up0, result.stale_up1) == (4, 3, 2, 1)
    assert result.reasons == ("timeout",) and result.fault == "hang"


def test_flapping_is_not_stale_but_an_ok_phase_must_recover():
    flap = judge_phase("vllm", phase("flap", "flap", {}, 0.0, 10.0), [scrape(6.0, 1.0), scrape(7.0, 0.0)], settle=5.0)
    assert flap.stale_up1 == 0 and flap.up0_share == 0.5
    ok = judge_phase("vllm", phase("recovered", "ok", {}, 0.0, 10.0),
                     [scrape(6.0, 1.0), scrape(7.0, 0.0), scrape(8.0, None)], settle=5.0)
    assert (ok.not_recovered, ok.missing) == (2, 1)


def test_non_200_and_hangs_are_counted_wherever_they_start():
    result = judge_phase("vllm", phase("down", "down", {}, 0.0, 10.0),
                         [scrape(1.0, None, status=500), scrape(6.0, None, status=0, seconds=20.0)], settle=5.0)
    assert (result.non_200, result.hangs, result.judged) == (2, 1, 0)


def test_gpu_phases_watch_the_broken_gpus_and_keep_the_others_healthy():
    lost = phase("down", "down", {"lost": [1]}, 0.0, 10.0)
    assert lost.faults["gpu"] == "gpu-lost" and lost.faults["litellm"] == "down"
    assert lost.faulted["gpu"] == (Selector("llmwatch_gpu_up", (("gpu", "1"),)),)

    def gpu_scrape(started, ups):
        return Scrape("gpu", started, 0.01, 200,
                      {("llmwatch_gpu_up", frozenset({("gpu", str(i)), ("uuid", f"GPU-{i}")})): v
                       for i, v in ups.items()})

    result = judge_phase("gpu", lost, [gpu_scrape(6.0, {0: 1, 1: 0, 2: 1}), gpu_scrape(7.0, {0: 0, 1: 0, 2: 1})],
                         settle=5.0)
    assert (result.up0, result.healthy_down, result.stale_up1) == (2, 1, 0)
    unloaded = phase("drip", "drip", {"driver_unloaded": True}, 0.0, 10.0)
    assert unloaded.faults["gpu"] == "driver-unloaded"
    assert unloaded.faulted["gpu"] == (Selector("llmwatch_gpu_nvml_up"),)


def test_the_schedule_starts_and_ends_healthy_and_recovers_after_the_huge_bodies():
    names = [name for name, _, _ in SCHEDULE]
    assert names[0] == "baseline" and names[-1] == "recovered"
    assert names[names.index("huge") + 1] == "after-huge"


def run_report(**overrides):
    phases = [phase(name, mode, gpu, 10.0 * i, 10.0 * (i + 1)) for i, (name, mode, gpu) in enumerate(SCHEDULE)]
    scrapes = [scrape(p.start + 6.0, 1.0 if p.faults["vllm"] in ("ok", "flap") else 0.0) for p in phases]
    samples = [Resources(0.0, 50_000_000, 10, 4), Resources(9.0, 60_000_000, 12, 5),
               Resources(59.0, 75_000_000, 12, 5), Resources(139.0, 70_000_000, 13, 5)]
    arguments = dict(settle=5.0, tracebacks=0, shutdown_seconds=0.4) | overrides
    return report("vllm", phases, scrapes, samples, **arguments)


def test_a_clean_run_has_no_problem_and_the_table_shows_the_moments():
    rep = run_report()
    assert rep.problems == []
    assert [r.rss_bytes for r in rep.resources.values()] == [50_000_000, 60_000_000, 75_000_000, 70_000_000]
    table = format_report([rep])
    assert "RSS MB   start 50 -> before faults 60 -> after huge 75 -> end 70" in table
    assert "0 problems" in table


def test_memory_kept_after_huge_bodies_a_slow_or_missing_exit_and_tracebacks_are_problems():
    phases = [phase(name, mode, gpu, 10.0 * i, 10.0 * (i + 1)) for i, (name, mode, gpu) in enumerate(SCHEDULE)]
    samples = [Resources(9.0, 60_000_000, 12, 5), Resources(59.0, 190_000_000, 12, 5),
               Resources(139.0, 190_000_000, 90, 70)]
    rep = report("vllm", phases, [], samples, settle=5.0, tracebacks=2, shutdown_seconds=None)
    assert rep.problems == [
        "vllm: RSS 190 MB after the huge bodies, 60 MB before the faults",
        "vllm: fds 12 before the faults, 90 at the end",
        "vllm: threads 5 before the faults, 70 at the end",
        "vllm: 2 tracebacks in its output",
        "vllm: did not exit after SIGTERM (killed)"]
    assert run_report(shutdown_seconds=7.5).problems == ["vllm: took 7.5 s to exit after SIGTERM"]


def test_stale_up_during_a_fault_is_a_problem_named_by_phase():
    phases = [phase("hang", "hang", {}, 0.0, 10.0)]
    rep = report("vllm", phases, [scrape(6.0, 1.0), scrape(8.0, 0.0)], [], settle=5.0, tracebacks=0,
                 shutdown_seconds=1.0)
    assert rep.problems == ["vllm: 1 stale up 1 in phase hang (hang)"]
    assert rep.phases[0].up0_share == 0.5


def test_an_answer_that_comes_after_its_phase_is_not_judged_on_its_up():
    down = phase("down", "down", {}, 0.0, 10.0)
    result = judge_phase("vllm", down, [scrape(6.0, 1.0, seconds=5.0), scrape(7.0, 0.0)], settle=5.0)
    assert (result.scrapes, result.judged, result.stale_up1) == (2, 1, 0)


def test_scrapes_still_open_at_sigterm_belong_to_the_shutdown():
    phases = [phase("recovered", "ok", {}, 0.0, 10.0)]
    in_flight = scrape(9.0, None, status=0, seconds=3.0)
    rep = report("vllm", phases, [scrape(6.0, 1.0), in_flight], [], settle=5.0, tracebacks=0,
                 shutdown_seconds=1.0, signalled=11.0)
    assert rep.problems == [] and rep.scrapes == 1
