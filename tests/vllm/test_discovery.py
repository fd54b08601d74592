"""Recognising and reaching vLLM containers from `docker inspect` JSON; static targets from settings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmwatch.upstreams.vllm_discovery import (DockerDiscovery, MatchRules, RejectedLabel, command_port, gpus_of,
                                               is_vllm, parse_static_targets, started_at, target_from_inspect,
                                               target_url)
from tests.fakes.docker_engine import FakeDockerEngine, _summary, container, gpus
from tests.procs import REPO

RULES = MatchRules(host_address="10.0.0.1")


@pytest.mark.parametrize("kwargs, expected", [
    ({"image": "vllm/vllm-openai:v0.11.0"}, True),
    ({"image": "rocm/vllm:rocm6.4_v0.10.1"}, True),
    ({"image": "registry.local:5000/team/vllm-custom@sha256:abc"}, True),
    ({"image": "python:3.12", "entrypoint": ["vllm", "serve"], "cmd": ["Qwen/Qwen3-8B"]}, True),
    ({"image": "python:3.12", "cmd": ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "m"]}, True),
    ({"image": "python:3.12", "labels": {"llmwatch.vllm": "true"}}, True),
    ({"image": "vllm/vllm-openai:latest", "labels": {"llmwatch.vllm": "false"}}, False),
    ({"image": "postgres:17"}, False),
    # a registry port is not a tag, and "vllm" in the tag alone is not the repository
    ({"image": "registry.local:5000/llm/server:vllm-compatible"}, False),
    ({"image": "ghcr.io/acme/llmwatch:1.0", "cmd": ["llmwatch", "vllm"]}, False),
])
def test_is_vllm(kwargs, expected):
    assert is_vllm(_summary(container("c" * 64, "x", **kwargs)), MatchRules()) is expected


@pytest.mark.parametrize("args, port", [
    (["vllm", "serve", "m", "--port", "8001"], 8001),
    (["vllm", "serve", "m", "--port=9000"], 9000),
    (["--port", "1", "--host", "0.0.0.0", "--port", "2"], 2),
    (["vllm", "serve", "m", "--port"], None),
    (["vllm", "serve", "m", "--portable", "3"], None),
    (["vllm", "serve", "m"], None),
])
def test_command_port(args, port):
    assert command_port(args) == port


def test_port_from_a_shell_command_line():
    inspect = container("c" * 64, "x", entrypoint=["/bin/sh", "-c"], cmd=["vllm serve m --port 8123 --tp 2"],
                        networks={"llm": "172.20.0.9"})
    assert target_from_inspect(inspect, RULES).url == "http://172.20.0.9:8123"


def test_port_label_beats_the_command_line_and_default_is_8000():
    labelled = container("c" * 64, "x", cmd=["--port", "8001"], labels={"llmwatch.vllm.port": "7000"},
                         networks={"n": "172.20.0.2"})
    plain = container("d" * 64, "y", networks={"n": "172.20.0.3"})
    assert target_from_inspect(labelled, RULES).url == "http://172.20.0.2:7000"
    assert target_from_inspect(plain, RULES).url == "http://172.20.0.3:8000"


@pytest.mark.parametrize("kwargs, gpu_ids", [
    ({"device_requests": gpus("0", "3")}, ("0", "3")),
    ({"device_requests": gpus("GPU-aaaa", "GPU-bbbb")}, ("GPU-aaaa", "GPU-bbbb")),
    ({"device_requests": gpus(count=-1)}, ("all",)),
    ({"device_requests": gpus(count=2)}, ("count:2",)),
    ({"env": ["NVIDIA_VISIBLE_DEVICES=1,2"]}, ("1", "2")),
    ({"env": ["NVIDIA_VISIBLE_DEVICES=all"]}, ("all",)),
    ({"env": ["NVIDIA_VISIBLE_DEVICES=void"]}, ()),
    ({}, ()),
    ({"device_requests": [{"Driver": "", "Count": 0, "DeviceIDs": ["0"], "Capabilities": [["gpu", "utility"]]}]},
     ("0",)),
    ({"device_requests": [{"Driver": "cdi", "Count": 0, "DeviceIDs": ["vendor/x=0"], "Capabilities": None}]}, ()),
])
def test_gpus_of(kwargs, gpu_ids):
    assert gpus_of(container("c" * 64, "x", **kwargs)) == gpu_ids


def test_how_a_container_is_reached():
    both = dict(ports={8000: 18000}, networks={"bridge": "172.17.0.4", "llm": "172.20.0.4"})
    assert target_url(container("c" * 64, "x", network_mode="host"), 8000, RULES) == "http://10.0.0.1:8000"
    assert target_url(container("c" * 64, "x", **both), 8000, RULES) == "http://10.0.0.1:18000"
    preferring = MatchRules(host_address="10.0.0.1", networks=("llm",))
    assert target_url(container("c" * 64, "x", **both), 8000, preferring) == "http://172.20.0.4:8000"
    assert target_url(container("c" * 64, "x", networks={"bridge": "172.17.0.4"}), 8000, RULES) == \
        "http://172.17.0.4:8000"
    labelled = container("c" * 64, "x", labels={"llmwatch.vllm.url": "http://gpu-box:8000/"}, **both)
    assert target_url(labelled, 8000, RULES) == "http://gpu-box:8000"
    assert target_url(container("c" * 64, "x", network_mode="none"), 8000, RULES) is None


@pytest.mark.parametrize("label", [
    "http://metadata.internal/latest?token=1",  # a query string
    "http://gpu-box:8000/#x",  # a fragment
    "http://admin:secret@gpu-box:8000",  # credentials
    "file:///etc/passwd",
    "gopher://gpu-box:70/",
    "http://",  # no host
    "http://gpu-box:99999",
    "http://gpu-box:8000/\r\nX-Injected: 1",
])
def test_a_url_label_is_checked_like_a_static_target(label):
    labelled = container("c" * 64, "x", labels={"llmwatch.vllm.url": label}, networks={"bridge": "172.17.0.4"})
    with pytest.raises(RejectedLabel, match="llmwatch.vllm.url") as e:
        target_url(labelled, 8000, RULES)
    assert "secret" not in str(e.value)
    with pytest.raises(ValueError):
        parse_static_targets([label])  # the same rule for both


def test_a_container_with_a_rejected_url_label_is_skipped_and_logged_once(tmp_path, caplog):
    now = [0.0]
    bad = container("b" * 64, "evil", labels={"llmwatch.vllm.url": "http://169.254.169.254/x?y=1"})
    good = container("a" * 64, "vllm-a", ports={8000: 18000})
    with FakeDockerEngine(tmp_path / "docker.sock", [bad, good]) as engine:
        discovery = DockerDiscovery(engine.url, 5.0, RULES, inspect_seconds=30, clock=lambda: now[0])
        try:
            for t in (0, 31, 62, 93):  # inspected again every 30 s
                now[0] = t
                assert [x.name for x in discovery.targets()] == ["vllm-a"]
        finally:
            discovery.close()
    warnings = [r for r in caplog.records if "URL label" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].container == "evil" and "?query" in warnings[0].problem
    assert [p for p in engine.requests if "169.254" in p] == []


def test_unreachable_container_is_skipped():
    assert target_from_inspect(container("c" * 64, "x", network_mode="none"), RULES) is None


def test_started_at():
    assert started_at(container("c" * 64, "x", started_at="2026-11-01T10:00:01.123456789Z")) == 1793527201.123456
    assert started_at(container("c" * 64, "x", started_at="0001-01-01T00:00:00Z")) is None
    assert started_at(container("c" * 64, "x", started_at="garbage")) is None


def test_static_targets():
    targets = parse_static_targets(["http://10.0.0.5:8000/", {"name": "bare-metal", "url": "https://gpu-2:8443"}])
    assert [(t.name, t.url, t.source) for t in targets] == [("10.0.0.5:8000", "http://10.0.0.5:8000", "static"),
                                                            ("bare-metal", "https://gpu-2:8443", "static")]


@pytest.mark.parametrize("raw, message", [
    ("http://a:1", "must be a list"),
    (["ftp://a:1"], "entry 1: 'ftp://a:1' is not an http(s) base URL"),
    (["http://:8000"], "is not an http(s) base URL"),
    (["http://a:99999"], "invalid port"),
    (["http://a:1/metrics?x=1"], "without ?query"),
    ([{"url": "http://a:1", "nme": "typo"}], "entry 1 must be a URL or a table with keys name and url"),
    ([{"name": "x"}], "with keys name and url"),
    ([42], "entry 1 must be a URL"),
    (["http://a:1", {"name": "a:1", "url": "http://b:2"}], "target name 'a:1' is used twice"),
])
def test_static_target_errors(raw, message):
    with pytest.raises(ValueError, match=None) as e:
        parse_static_targets(raw)
    assert message in str(e.value)


def run_check_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run([sys.executable, "-m", "llmwatch", "vllm", "--check-config"], capture_output=True,
                          text=True, cwd=REPO, env=base | env, timeout=60)


def test_settings_from_environment_replace_the_lists():
    result = run_check_config({"LLMWATCH_VLLM__TARGETS": '["http://127.0.0.1:8000", {name="b", url="http://b:1"}]',
                               "LLMWATCH_VLLM__DISCOVERY": "false", "LLMWATCH_VLLM__METRIC_PREFIXES": '["vllm:"]'})
    assert result.returncode == 0, result.stderr
    assert "discovery = false" in result.stdout
    assert 'metric_prefixes = ["vllm:"]  # LLMWATCH_VLLM__METRIC_PREFIXES' in result.stdout  # replaced, not appended


def test_bad_targets_setting_names_the_key_and_exits_2():
    result = run_check_config({"LLMWATCH_VLLM__TARGETS": '["ftp://nowhere"]'})
    assert result.returncode == 2
    assert "vllm.targets (env LLMWATCH_VLLM__TARGETS): entry 1: 'ftp://nowhere' is not an http(s) base URL" \
        in result.stderr
