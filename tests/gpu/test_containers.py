"""pid -> cgroup -> container id -> container name."""

from __future__ import annotations

from hypothesis import given, strategies as st

from llmwatch.exporters.gpu.containers import HOST, UNKNOWN, ContainerResolver, container_id_from_cgroup, docker_lookup
from tests.fakes.docker_engine import FakeDockerEngine, container
from tests.gpu.scenarios import write_proc

CID = "0123456789abcdef" * 4


def test_cgroup_v2_systemd_driver():
    assert container_id_from_cgroup(f"0::/system.slice/docker-{CID}.scope\n") == CID


def test_cgroup_v1_cgroupfs_driver():
    text = f"12:pids:/docker/{CID}\n11:memory:/docker/{CID}\n1:name=systemd:/docker/{CID}\n"
    assert container_id_from_cgroup(text) == CID


def test_containerd_and_kubernetes_scopes():
    text = f"0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{CID}.scope\n"
    assert container_id_from_cgroup(text) == CID


def test_host_processes_have_no_container():
    assert container_id_from_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n") is None
    assert container_id_from_cgroup("0::/init.scope\n") is None
    assert container_id_from_cgroup("") is None


@given(st.text())
def test_any_cgroup_text_is_parsed_without_error(text):
    result = container_id_from_cgroup(text)
    assert result is None or (len(result) == 64 and result in text)


def test_resolver_caches_names_and_marks_host_and_invisible_pids(tmp_path):
    proc = write_proc(tmp_path, {10: f"0::/system.slice/docker-{CID}.scope\n",
                                 11: f"0::/system.slice/docker-{CID}.scope\n", 12: "0::/init.scope\n"})
    asked = []

    def lookup(cid):
        asked.append(cid)
        return "vllm-a"

    now = [0.0]
    resolver = ContainerResolver(proc, lookup, cache_seconds=60, clock=lambda: now[0])
    assert [resolver.container_of(p) for p in (10, 11, 12, 99)] == ["vllm-a", "vllm-a", HOST, UNKNOWN]
    assert asked == [CID]  # one Docker call for two processes of one container
    now[0] = 61
    resolver.container_of(10)
    assert asked == [CID, CID]  # asked again once the cache entry expired


def test_unreachable_docker_falls_back_to_the_short_id_and_counts(tmp_path):
    proc = write_proc(tmp_path, {10: f"0::/docker/{CID}\n"})

    def lookup(cid):
        raise ConnectionError("docker socket proxy refused the connection")

    resolver = ContainerResolver(proc, lookup)
    assert resolver.container_of(10) == CID[:12]
    assert resolver.lookup_errors == 1


def test_docker_sdk_lookup_against_an_engine_api_on_a_unix_socket(tmp_path):
    with FakeDockerEngine(tmp_path / "docker.sock", [container(CID, "vllm-llama-70b")]) as engine:
        lookup = docker_lookup(engine.url, timeout=2)
        assert lookup(CID) == "vllm-llama-70b"
        assert lookup("f" * 64) is None  # gone since: 404 from the engine
    assert any(r.endswith(f"/containers/{CID}/json") for r in engine.requests)
