"""Named vLLM situations, shared by the golden tests and the metric-catalog test.

Each scenario starts simulated vLLM servers on loopback (bodies from tests/vllm/fixtures), runs
the exporter against them (static targets, or discovery through the fake Docker Engine) and
returns the /metrics text of its last scrape, as the HTTP server writes it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from llmwatch.exporters.vllm.collector import VllmExporter, vllm_fetcher
from llmwatch.upstreams.vllm_discovery import DockerDiscovery, MatchRules, Target, parse_static_targets
from llmwatch.simulation.vllm import FakeVllmServer, busy_engine
from tests.fakes.docker_engine import FakeDockerEngine, container, docker_time, gpus
from tests.procs import dead_url, render
from tests.vllm.make_fixtures import FIXTURES, FLEET

AWKWARD = (FIXTURES / "awkward.prom").read_text()


def fixture_server(name: str, **kwargs) -> FakeVllmServer:
    """A server answering /metrics with a committed fixture and /v1/models, /version to match."""
    version, engines, _ = FLEET[name]
    return FakeVllmServer(version, engines(), body=(FIXTURES / name).read_text(), **kwargs)


def make_exporter(targets: list[Target], *, discovery: DockerDiscovery | None = None, budget: float = 5.0,
                  **kwargs) -> VllmExporter:
    return VllmExporter(static_targets=targets, discovery=discovery, fetcher=vllm_fetcher(), budget=budget, **kwargs)


def fleet(tmp_path: Path) -> str:
    """Every fixture generation side by side, plus the four ways a server can fail."""
    with contextlib.ExitStack() as stack:
        servers = {name.removesuffix(".prom"): stack.enter_context(fixture_server(name)) for name in FLEET}
        servers["vllm-awkward"] = stack.enter_context(FakeVllmServer("0.9.2", [busy_engine(model_name="odd-model")],
                                                                     body=AWKWARD))
        servers["vllm-garbage"] = stack.enter_context(FakeVllmServer(mode="garbage"))
        servers["vllm-error"] = stack.enter_context(FakeVllmServer(mode="error"))
        servers["vllm-hang"] = stack.enter_context(FakeVllmServer(mode="hang"))
        targets = [{"name": name, "url": server.url} for name, server in servers.items()]
        targets.append({"name": "vllm-down", "url": dead_url()})
        with contextlib.closing(make_exporter(parse_static_targets(targets), budget=1.0)) as exporter:
            return render(exporter)


def single_v0(tmp_path: Path) -> str:
    """The smallest case: one old V0 server given as a bare URL."""
    with fixture_server("vllm-0.6.4.prom") as server:
        with contextlib.closing(make_exporter(parse_static_targets([server.url]))) as exporter:
            return render(exporter).replace(server.url.removeprefix("http://"), "127.0.0.1:PORT")


def docker_fleet(tmp_path: Path) -> str:
    """Containers found through Docker: image, command or label; GPUs by index, UUID or all."""
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(fixture_server("vllm-0.5.3.prom"))
        b = stack.enter_context(fixture_server("vllm-0.28.0.prom"))
        c = stack.enter_context(fixture_server("vllm-0.5.3-fresh.prom"))
        containers = [
            # the official image, --port in the command, published on the host, GPUs 0-3
            container("1" * 64, "vllm-mistral", image="vllm/vllm-openai:v0.5.3",
                      cmd=["--model", "mistralai/Mistral-7B-Instruct-v0.3", "--port", "8001"], ports={8001: a.port},
                      device_requests=gpus("0", "1", "2", "3"), networks={"llm": "172.20.0.5"}),
            # a custom image started with `vllm serve`, GPUs by UUID in the environment, reached via label URL
            container("2" * 64, "qwen-serving", image="registry.local/llm/serving:2026.11",
                      entrypoint=["vllm", "serve"], cmd=["Qwen/Qwen3-32B", "--port=9000"],
                      env=["NVIDIA_VISIBLE_DEVICES=GPU-4b2c1a90-0000-4000-8000-000000000004,"
                           "GPU-4b2c1a90-0000-4000-8000-000000000005"],
                      labels={"llmwatch.vllm.url": b.url}),
            # opted in by label (image and command say nothing), all GPUs, port from the label
            container("3" * 64, "legacy-llama", image="internal/llm-server:1.4", cmd=["/start.sh"],
                      labels={"llmwatch.vllm": "true", "llmwatch.vllm.port": "8000"}, ports={8000: c.port},
                      device_requests=gpus(count=-1)),
            # not vLLM, and a vLLM image opted out: neither is scraped
            container("4" * 64, "langfuse-db", image="postgres:17.6"),
            container("5" * 64, "vllm-scratch", image="vllm/vllm-openai:latest", labels={"llmwatch.vllm": "false"},
                      ports={8000: 1}),
        ]
        engine = stack.enter_context(FakeDockerEngine(tmp_path / "docker.sock", containers))
        discovery = DockerDiscovery(engine.url, 5.0, MatchRules(host_address="127.0.0.1"))
        with contextlib.closing(make_exporter([], discovery=discovery)) as exporter:
            return render(exporter)


def docker_lost(tmp_path: Path) -> str:
    """Docker stops answering after the first scrape: the containers found before are still scraped."""
    with fixture_server("vllm-0.5.3.prom") as server:
        containers = [container("6" * 64, "vllm-mistral", image="vllm/vllm-openai:v0.5.3", ports={8000: server.port},
                                device_requests=gpus("6", "7"))]
        with FakeDockerEngine(tmp_path / "docker.sock", containers) as engine:
            discovery = DockerDiscovery(engine.url, 5.0, MatchRules(host_address="127.0.0.1"))
            with contextlib.closing(make_exporter([], discovery=discovery)) as exporter:
                render(exporter)
                engine.down = True
                return render(exporter)


NOW = 1793527200.0  # 2026-11-01T10:00:00Z, the wall clock of the lifecycle scenario


def docker_lifecycle(tmp_path: Path) -> str:
    """Every state a vLLM container can be in: serving, loading its model within the start grace,
    not answering after it, killed for memory, stopped on purpose, between two restarts, created,
    paused. Only the running ones are scraped."""
    with contextlib.ExitStack() as stack:
        serving = stack.enter_context(fixture_server("vllm-0.11.0.prom"))
        loading, hung = dead_url().rsplit(":", 1)[1], dead_url().rsplit(":", 1)[1]
        hour_ago, minute_ago = docker_time(NOW - 3600), docker_time(NOW - 60)
        containers = [
            container("1" * 64, "vllm-serving", ports={8000: serving.port}, started_at=hour_ago),
            container("2" * 64, "vllm-loading", ports={8000: int(loading)}, started_at=minute_ago),
            container("3" * 64, "vllm-hung", ports={8000: int(hung)}, started_at=hour_ago),
            container("4" * 64, "vllm-oom", state="exited", exit_code=137, oom_killed=True,
                      started_at=hour_ago, finished_at=minute_ago, ports={8000: 1}),
            container("5" * 64, "vllm-stopped", state="exited", exit_code=0, started_at=hour_ago,
                      finished_at=minute_ago),
            container("6" * 64, "vllm-crashing", state="restarting", exit_code=1, restart_count=4,
                      started_at=minute_ago, finished_at=docker_time(NOW - 5)),
            container("7" * 64, "vllm-created", state="created"),
            container("8" * 64, "vllm-paused", state="paused", started_at=hour_ago, ports={8000: 1}),
            container("9" * 64, "langfuse-db", image="postgres:17.6", state="exited", exit_code=1),
        ]
        engine = stack.enter_context(FakeDockerEngine(tmp_path / "docker.sock", containers))
        discovery = DockerDiscovery(engine.url, 5.0, MatchRules(host_address="127.0.0.1"))
        with contextlib.closing(make_exporter([], discovery=discovery, wall_clock=lambda: NOW)) as exporter:
            return render(exporter)


def speculative(tmp_path: Path) -> str:
    """Servers started with a speculative config (V1 counters, V0 counters and gauges) and with LoRA
    adapters: families a server sends only when those features are on."""
    with contextlib.ExitStack() as stack:
        servers = {
            "vllm-eagle": stack.enter_context(FakeVllmServer("0.11.0", [busy_engine(
                model_name="llama-eagle", speculative_tokens=3, lora_adapters=("sql-lora", "chat-lora"))])),
            "vllm-draft-v0": stack.enter_context(FakeVllmServer("0.6.4", [busy_engine(
                model_name="llama-draft", speculative_tokens=4)]))}
        targets = [{"name": name, "url": server.url} for name, server in servers.items()]
        with contextlib.closing(make_exporter(parse_static_targets(targets))) as exporter:
            text = render(exporter)
        for server in servers.values():
            text = text.replace(server.url.removeprefix("http://"), "127.0.0.1:PORT")
        return text


SCENARIOS = {"fleet": fleet, "single_v0": single_v0, "docker_fleet": docker_fleet, "docker_lost": docker_lost,
             "docker_lifecycle": docker_lifecycle, "speculative": speculative}
