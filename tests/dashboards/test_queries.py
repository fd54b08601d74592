"""Every PromQL query of every dashboard, variables expanded, returns data from the real
Prometheus of the stack test (tests/stack/stack.py) fed by the real exporters, node-exporter and
the simulated upstreams — with traffic flowing, as on a server in use.

Variables are expanded twice: with "All" (Grafana's ``.*``) and with the first value each
variable's own query returns, so a variable whose values do not match the panels' labels fails.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from datetime import datetime, timedelta, timezone

import pytest

from llmwatch.simulation.langfuse import generate
from tests.conftest import require_binary
from tests.dashboards.boards import (MAY_BE_EMPTY, NEEDS_A_FEATURE, expand, load, panels, prometheus_regex, queries,
                                     variable_names)
from tests.procs import wait_until
from tests.stack.stack import Stack

pytestmark = pytest.mark.integration
BOARDS = load()
# The Logs board has only Loki queries: test_structure parses them with Grafana's LogQL grammar.
PROMQL_BOARDS = sorted(name for name, board in BOARDS.items() if any(q.language == "promql" for q in queries(board)))


class Traffic:
    """Requests finishing on the simulated vLLM servers and Langfuse, and real requests through the
    real LiteLLM proxy (plain, streamed, one group falling back, one unknown group), until stopped."""

    def __init__(self, stack: Stack):
        self.stack, self.stop = stack, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        for tick in itertools.count():
            for name, server in self.stack.vllm.items():
                for engine in server.engines:
                    engine.finish(prompt=400 + 50 * (tick % 7), generated=120 + 10 * (tick % 5), ttft=0.2 + 0.05 * (tick % 4),
                                  itl=0.02 + 0.005 * (tick % 3), queue=0.01 * (tick % 3), cached=100)
                    engine.running, engine.waiting, engine.kv_cache_usage = 4 + tick % 3, tick % 2, 0.4 + 0.01 * (tick % 10)
                    engine.preemptions += tick % 2
            for group, stream in (("llama-3.1-70b", tick % 2 == 0), ("qwen3-32b", tick % 2 == 1), ("broken", False)):
                self.stack.chat(group, stream=stream)
            if tick % 3 == 0:
                self.stack.chat("no-such-group")  # a request LiteLLM refuses: the clients' error rate
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            more = generate(now, traces=4, seed=tick, span=timedelta(seconds=1), prefix=f"live{tick}-")
            self.stack.langfuse.data.traces += more.traces
            self.stack.langfuse.data.observations += more.observations
            self.stack.langfuse.data.scores += more.scores
            if self.stop.wait(0.5):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for binary in ("prometheus", "alertmanager", "node_exporter"):
        require_binary(binary)
    # Langfuse 3 (its v1 metrics API with the trace view), read every second, with the environment label
    # (the Langfuse board's environment variable lists its values; without it "All" matches the label's absence).
    running = Stack(tmp_path_factory.mktemp("dashboards"), langfuse_version="3.225.4",
                    langfuse_env={"LLMWATCH_LANGFUSE__CACHE_SECONDS": "1", "LLMWATCH_LANGFUSE__ENVIRONMENT_LABEL": "true"})
    try:
        running.start()
        with Traffic(running):
            yield running
    except AssertionError as e:
        raise AssertionError(f"{e}\n{running.logs()}") from None
    finally:
        running.close()


def variable_values(stack: Stack, board: dict, chosen: dict[str, str]) -> dict[str, list[str]]:
    """Each Prometheus query variable's values, as Grafana's label_values() would list them."""
    values = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query" or variable["datasource"]["type"] != "prometheus":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        selector, label = expand(match.group(1), chosen), match.group(2)
        series = stack.api("series", **{"match[]": selector})
        values[variable["name"]] = sorted({s[label] for s in series if label in s})
        chosen = {**chosen, variable["name"]: prometheus_regex(values[variable["name"]][0])
                  if values[variable["name"]] else ".*" if variable["name"] in MAY_BE_EMPTY else "NO-VALUES"}
    return values


def has_data(result: list[dict]) -> bool:
    return any(not math.isnan(float(r["value"][1])) for r in result)


def expansions(stack: Stack, board: dict) -> list[dict[str, str]]:
    every = {name: ".*" for name in variable_names(board)}

    def filled(values: dict[str, list[str]]) -> bool:
        return all(found or name in MAY_BE_EMPTY for name, found in values.items())
    try:
        values = wait_until(lambda: (v := variable_values(stack, board, every)) and filled(v) and v or {},
                            60, "variables with values") if len(every) > 1 else {}
    except AssertionError:
        empty = [name for name, found in variable_values(stack, board, every).items() if not found]
        raise AssertionError(f"{board['title']}: variables with no values: {empty}") from None
    first = dict(every)
    for name in values:  # chained: each variable's first value given the ones before it (or All)
        found = variable_values(stack, board, first)[name]
        first[name] = prometheus_regex(found[0]) if found else ".*"
    return [every, first]


@pytest.mark.parametrize("name", PROMQL_BOARDS)
def test_every_panel_query_returns_data(stack, name):
    board = BOARDS[name]
    promql = [q for q in queries(board) if q.language == "promql"]
    optional = [q for q in promql if (board["title"], q.panel) in NEEDS_A_FEATURE]
    assert len({q.panel for q in optional}) == sum(title == board["title"] for title, _ in NEEDS_A_FEATURE)
    for query in optional:  # runs, or raises on an invalid query
        stack.query(expand(query.expr, {v: ".*" for v in variable_names(board)}))
    promql = [q for q in promql if q not in optional]
    pending = {(q.panel, expand(q.expr, values)) for values in expansions(stack, board) for q in promql}

    def all_answered():  # data arrives with the next scrapes and rule evaluations
        pending.difference_update({(panel, expr) for panel, expr in pending if has_data(stack.query(expr))})
        return not pending

    try:
        wait_until(all_answered, 120, "every query returns data", interval=1)
    except AssertionError:
        raise AssertionError(f"{board['title']}: queries without data:\n"
                             + "\n".join(f"  {panel}: {expr}" for panel, expr in sorted(pending))) from None


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_annotation_queries_run(stack, name):
    board = BOARDS[name]
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            stack.query(expand(annotation["expr"], {v: ".*" for v in variable_names(board)}))  # raises on a bad query

