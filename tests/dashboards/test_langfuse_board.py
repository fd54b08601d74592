"""The Langfuse board's environment variable and its traces by name and release, on the committed JSON.
(That the queries return data, with the variables at All and at one value, is test_queries.py.)"""

from __future__ import annotations

from tests.dashboards.boards import load, panels

BOARD = next(board for board in load().values() if board["uid"] == "llmwatch-langfuse")


def exprs(title: str) -> list[str]:
    return [t["expr"] for p in panels(BOARD) if p["title"] == title for t in p["targets"]]


def test_the_environment_variable_hides_nothing_when_the_label_is_absent():
    """The exporter labels environments only with langfuse.environment_label; "All" must then match the
    label's absence, which ".*" does and ".+" would not."""
    [variable] = [v for v in BOARD["templating"]["list"] if v["name"] == "environment"]
    assert variable["includeAll"] and variable["allValue"] == ".*"
    assert variable["current"]["value"] == ["$__all"]


def test_every_langfuse_series_is_filtered_by_project_and_environment():
    for p in panels(BOARD):
        for target in p["targets"]:
            # series of the exporter itself (up, scrape errors) have only the host filter every board adds
            if "llmwatch_langfuse_" in target["expr"] and "{" in target["expr"].replace('{host=~"$host"}', ""):
                assert 'project=~"$project"' in target["expr"], p["title"]
                assert 'environment=~"$environment"' in target["expr"], p["title"]


def test_traces_by_name_and_release_show_the_busiest_and_name_the_empty_value():
    for title, label in (("Traces by name", "trace_name"), ("Traces by release", "release")):
        [expr] = exprs(title)
        assert expr.startswith("label_replace(topk(10, sum by (" + label + ") (rate(")
        assert f'"{label}", "(none)", "{label}", "")' in expr
