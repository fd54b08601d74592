"""vLLM containers in every state: reported whatever their state, scraped only while running, and
``starting`` (not down) while a fresh container loads its model within the start grace."""

from __future__ import annotations

import contextlib

from llmwatch.upstreams.vllm_discovery import DockerDiscovery, MatchRules
from llmwatch.simulation.vllm import FakeVllmServer
from tests.fakes.docker_engine import FakeDockerEngine, container, docker_time, exit_container, start_container
from tests.procs import render, samples, value
from tests.vllm.scenarios import NOW, docker_lifecycle, make_exporter


def state_of(text: str, name: str) -> str:
    """The one state whose series is 1 (fails unless exactly one is)."""
    on = [dict(ls)["state"] for (n, ls), v in samples(text).items()
          if n == "llmwatch_vllm_container_state" and ("container", name) in ls and v == 1]
    assert len(on) == 1, (name, on)
    return on[0]


def has(text: str, name: str, container_name: str) -> bool:
    return any(n == name and ("container", container_name) in ls for n, ls in samples(text))


def test_every_vllm_container_is_reported_in_its_state_and_only_running_ones_are_scraped(tmp_path):
    text = docker_lifecycle(tmp_path)
    assert {name: state_of(text, name) for name in ("vllm-serving", "vllm-loading", "vllm-hung", "vllm-oom",
                                                     "vllm-stopped", "vllm-crashing", "vllm-created", "vllm-paused")} \
        == {"vllm-serving": "running", "vllm-loading": "starting", "vllm-hung": "running", "vllm-oom": "exited",
            "vllm-stopped": "exited", "vllm-crashing": "restarting", "vllm-created": "created",
            "vllm-paused": "paused"}
    assert not has(text, "llmwatch_vllm_container_state", "langfuse-db")  # not vLLM
    # scraped (an up series) only while running; an exited container has no up 0 to page on
    ups = {dict(ls)["container"]: v for (n, ls), v in samples(text).items() if n == "llmwatch_vllm_up"}
    assert ups == {"vllm-serving": 1, "vllm-loading": 0, "vllm-hung": 0}
    # exit code, OOM flag and finish time of the last run, while the process has ended
    assert value(text, "llmwatch_vllm_container_exit_code", container="vllm-oom") == 137
    assert value(text, "llmwatch_vllm_container_oom_killed", container="vllm-oom") == 1
    assert value(text, "llmwatch_vllm_container_exit_code", container="vllm-stopped") == 0
    assert value(text, "llmwatch_vllm_container_oom_killed", container="vllm-stopped") == 0
    assert value(text, "llmwatch_vllm_container_exit_code", container="vllm-crashing") == 1
    assert value(text, "llmwatch_vllm_container_finish_time_seconds", container="vllm-crashing") == NOW - 5
    assert not has(text, "llmwatch_vllm_container_exit_code", "vllm-serving")
    assert not has(text, "llmwatch_vllm_container_finish_time_seconds", "vllm-serving")
    assert value(text, "llmwatch_vllm_container_restarts_total", container="vllm-crashing") == 4
    assert value(text, "llmwatch_vllm_container_start_time_seconds", container="vllm-loading") == NOW - 60
    assert not has(text, "llmwatch_vllm_container_start_time_seconds", "vllm-created")  # never started
    assert value(text, "llmwatch_vllm_targets", source="docker") == 3


@contextlib.contextmanager
def one_container(tmp_path, server: FakeVllmServer, started: float, grace: float = 900.0):
    """An exporter watching one vLLM container published on ``server``'s port; yields
    (engine, the container's inspect dict, the wall clock as a one-item list, the exporter)."""
    clock = [started]
    c = container("a" * 64, "vllm-a", ports={8000: server.port}, started_at=docker_time(started))
    with FakeDockerEngine(tmp_path / "docker.sock", [c]) as engine:
        discovery = DockerDiscovery(engine.url, 5.0, MatchRules(host_address="127.0.0.1"))
        with contextlib.closing(make_exporter([], discovery=discovery, start_grace=grace,
                                              wall_clock=lambda: clock[0])) as exporter:
            yield engine, c, clock, exporter


def test_a_container_loading_its_model_is_starting_until_the_grace_ends(tmp_path):
    with FakeVllmServer(mode="error") as server, one_container(tmp_path, server, NOW, grace=900) as (_, _, clock, exporter):
        clock[0] = NOW + 60
        loading = render(exporter)
        clock[0] = NOW + 901
        late = render(exporter)
    assert value(loading, "llmwatch_vllm_up", container="vllm-a") == 0
    assert state_of(loading, "vllm-a") == "starting"
    assert value(late, "llmwatch_vllm_up", container="vllm-a") == 0
    assert state_of(late, "vllm-a") == "running"  # not answering after the grace: down


def test_a_server_that_answered_is_down_at_once_and_starting_again_after_a_restart(tmp_path):
    with FakeVllmServer() as server, one_container(tmp_path, server, NOW) as (engine, c, clock, exporter):
        clock[0] = NOW + 120
        serving = render(exporter)
        server.mode = "error"  # hangs or crashes inside the grace: no excuse
        clock[0] = NOW + 150
        failing = render(exporter)
        exit_container(c, 1, at=NOW + 160, restarting=True)  # the restart policy brings it back
        restarting = render(exporter)
        start_container(c, at=NOW + 170, by_policy=True)
        clock[0] = NOW + 200
        reloading = render(exporter)
        server.mode = "ok"
        clock[0] = NOW + 400
        back = render(exporter)
    assert state_of(serving, "vllm-a") == "running" and value(serving, "llmwatch_vllm_up", container="vllm-a") == 1
    assert state_of(failing, "vllm-a") == "running" and value(failing, "llmwatch_vllm_up", container="vllm-a") == 0
    assert state_of(restarting, "vllm-a") == "restarting"
    assert not has(restarting, "llmwatch_vllm_up", "vllm-a")
    assert value(restarting, "llmwatch_vllm_container_exit_code", container="vllm-a") == 1
    assert state_of(reloading, "vllm-a") == "starting"
    assert value(reloading, "llmwatch_vllm_container_restarts_total", container="vllm-a") == 1
    assert value(reloading, "llmwatch_vllm_container_start_time_seconds", container="vllm-a") == NOW + 170
    assert state_of(back, "vllm-a") == "running" and value(back, "llmwatch_vllm_up", container="vllm-a") == 1


def test_an_exit_is_seen_at_the_next_scrape_not_after_the_inspect_cache(tmp_path):
    """The list shows the new state at once; the container is inspected again for its exit code."""
    with FakeVllmServer() as server, one_container(tmp_path, server, NOW) as (engine, c, clock, exporter):
        before = render(exporter)
        exit_container(c, 1, at=NOW + 10)
        after = render(exporter)  # the discovery's monotonic clock has not moved past its cache time
        paths = list(engine.requests)
    assert state_of(before, "vllm-a") == "running"
    assert state_of(after, "vllm-a") == "exited"
    assert value(after, "llmwatch_vllm_container_exit_code", container="vllm-a") == 1
    assert not has(after, "llmwatch_vllm_up", "vllm-a")
    assert all("all=1" in p for p in paths if "/containers/json" in p)  # exited ones are listed too


def test_discovery_targets_are_the_running_containers_only(tmp_path):
    """What the probe asks for: an exited or paused container is not something to send requests to."""
    running = container("a" * 64, "vllm-a", ports={8000: 18000})
    stopped = container("b" * 64, "vllm-b", ports={8000: 18001})
    paused = container("c" * 64, "vllm-c", ports={8000: 18002}, state="paused")
    exit_container(stopped, 0, at=NOW)
    with FakeDockerEngine(tmp_path / "docker.sock", [running, stopped, paused]) as engine:
        discovery = DockerDiscovery(engine.url, 5.0, MatchRules(host_address="127.0.0.1"))
        try:
            assert [t.name for t in discovery.targets()] == ["vllm-a"]
            assert [(c.name, c.state) for c in discovery.containers()] == [
                ("vllm-a", "running"), ("vllm-b", "exited"), ("vllm-c", "paused")]
        finally:
            discovery.close()


def test_a_restart_between_two_scrapes_is_a_new_start_not_an_outage(tmp_path):
    """`docker restart` between two lists: running before and after, the list shows no change and
    the inspection is cached; the server's silence makes the exporter look again at once."""
    with FakeVllmServer() as server, one_container(tmp_path, server, NOW - 3600) as (engine, c, clock, exporter):
        clock[0] = NOW
        serving = render(exporter)
        server.mode = "error"
        exit_container(c, 143, at=NOW + 1)
        start_container(c, at=NOW + 3)
        clock[0] = NOW + 30
        restarted = render(exporter)
        still_loading = render(exporter)
    assert state_of(serving, "vllm-a") == "running"
    assert state_of(restarted, "vllm-a") == "starting"
    assert value(restarted, "llmwatch_vllm_container_start_time_seconds", container="vllm-a") == NOW + 3
    assert state_of(still_loading, "vllm-a") == "starting"
