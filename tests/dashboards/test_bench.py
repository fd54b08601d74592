"""scripts/bench_dashboards' machinery on a tiny fleet: the synthetic data is what the boards read, so a
board query that a change breaks (a renamed metric, a recording rule gone, a wrong label) comes back
empty here. Timings are the script's business; nothing here asserts one."""

from __future__ import annotations

import io
import re
import time

import pytest

from tests.conftest import require_binary
from tests.dashboards import bench


def test_grafana_step_and_windows_for_a_day_on_a_1920px_panel():
    # 86400 s / 1920 px = 45 s, which Grafana rounds up to 1 minute; the rate window is
    # max(interval + scrape, 4 x scrape) with the datasource's 30 s scrape interval.
    assert bench.grafana_interval(86400) == 60
    assert bench.builtins(86400) == {"__interval": "60s", "__rate_interval": "120s", "__range": "86400s",
                                     "__range_s": "86400", "__auto": "60s"}
    assert bench.grafana_interval(3600) == 30  # 1.9 s rounds to 2 s; never below the scrape interval


def test_counters_grow_and_buckets_stay_ordered():
    fleet = bench.Fleet(servers=1, gpus=1, hours=2)
    series = [s for s in bench.vllm_series(fleet) if s.name == "vllm:time_to_first_token_seconds_bucket"
              and dict(s.labels).get("engine") == "0"]
    text = io.StringIO()
    bench.write_openmetrics(series, fleet, 1_800_000_000, text)
    values: dict[tuple[str, int], float] = {}
    for le, value, stamp in re.findall(r'le="([^"]+)".* (\S+) (\d+)\n', text.getvalue()):
        values[(le, int(stamp))] = float(value)
    stamps = sorted({stamp for _, stamp in values})
    bounds = sorted({le for le, _ in values}, key=float)
    assert len(stamps) == 2 * 3600 // bench.SCRAPE + 1 and len(bounds) > 3
    for le in bounds:
        assert all(values[(le, a)] <= values[(le, b)] for a, b in zip(stamps, stamps[1:])), le
    for stamp in stamps:
        assert all(values[(a, stamp)] <= values[(b, stamp)] for a, b in zip(bounds, bounds[1:]))
    inf = [values[("+Inf", stamp)] for stamp in stamps]
    assert inf[-1] > inf[0] > 0


@pytest.mark.integration
def test_every_board_query_answers_on_a_tiny_fleet(tmp_path):
    for name in ("prometheus", "promtool"):
        require_binary(name)
    fleet = bench.Fleet(servers=1, gpus=1, hours=1)
    end = int(time.time()) // 60 * 60
    bench.build(fleet, tmp_path, end, say=lambda line: None, merge=False)
    empty, asked = [], 0
    with bench.Prometheus(tmp_path / "data", tmp_path / "prometheus.log") as prometheus:
        for board in bench.boards().values():
            timed = bench.time_board(prometheus, board, end, fleet.hours, runs=1)
            asked += len(timed)
            empty += [f"{t.panel.board} / {t.panel.title} ({t.choice}): {t.expr}" for t in timed if t.empty and not bench.may_be_empty(t.panel)]
    assert asked > 200
    assert not empty, "queries without data:\n" + "\n".join(empty)
