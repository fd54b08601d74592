"""docker-compose.yml, checked without a Docker engine: against the Compose specification's JSON
schema, against the files it mounts, and against the stack's rules (pinned images, three ports
published on loopback by default, the socket only in the proxy and the proxy's allowlist, exporters
switchable by profile and scraped when they have a container). tests/e2e runs it on a Docker engine.

compose-spec.json is the Compose specification's schema (github.com/compose-spec/compose-spec,
schema/compose-spec.json at commit 170098ba07d9, June 2026; Apache License 2.0), kept here
because the tests run without network access.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from llmwatch.simulation.server import FakeServer
from llmwatch.tools.stack_config.render import EXPORTER_PROFILES

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SETTINGS = tomllib.loads((REPO / "config" / "settings.toml").read_text())
EXPORTER_PORTS = {"gpu": 9445, "vllm": 9902, "litellm": 9901, "langfuse": 9903, "probe": 9905}
# Services that run until stopped (stack-config runs once at start-up).
LONG_RUNNING = set(SERVICES) - {"stack-config"}


def test_compose_file_follows_the_compose_specification():
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_check_can_fail():
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    broken = {"services": {"x": {"image": "a:1", "helthcheck": {"test": ["CMD", "true"]}}}}  # misspelt key
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(broken))
    assert errors and "helthcheck" in errors[0].message


def test_every_file_it_mounts_or_builds_from_exists():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("${"):  # a host path from .env, e.g. ${LLMWATCH_DOCKER_ROOT:-/var/lib/docker}
                assert re.fullmatch(r"\$\{[A-Z_]+:-/[^}]*\}", re.match(r"\$\{[^}]*\}", volume).group()), volume
            elif source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"
            elif not source.startswith("/"):
                assert source in COMPOSE["volumes"], f"{name} uses volume {source}, not declared"
        if "build" in service:
            assert (REPO / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_every_image_is_pinned_to_an_exact_version():
    for name, service in SERVICES.items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to an exact version"


def test_grafana_prometheus_and_alertmanager_are_published_on_loopback_by_default():
    """Published ports bypass ufw; the default keeps them on this host (README, "Exposure and TLS")."""
    published = {name: service["ports"] for name, service in SERVICES.items() if service.get("ports")}
    assert set(published) == {"grafana", "prometheus", "alertmanager", "loki"}
    # Loki has no password: agent hosts push to it on an address of its own (README, "A second GPU host")
    assert published.pop("loki") == ["${LOKI_PUBLISH_ADDRESS:-127.0.0.1}:${LOKI_PORT:-23002}:23002"]
    for name, port, variable in (("grafana", 23000, "GRAFANA_PORT"), ("prometheus", 23001, "PROMETHEUS_PORT"),
                                 ("alertmanager", 23003, "ALERTMANAGER_PORT")):
        assert published[name] == [f"${{LLMWATCH_PUBLISH_ADDRESS:-127.0.0.1}}:${{{variable}:-{port}}}:{port}"], name
    assert "--web.config.file=/etc/prometheus/stack/web.yml" in SERVICES["prometheus"]["command"]  # basic auth
    assert "--web.config.file=/etc/alertmanager/stack/web.yml" in SERVICES["alertmanager"]["command"]
    template = (REPO / "config" / "env.example").read_text()
    assert "\nLLMWATCH_PUBLISH_ADDRESS=127.0.0.1\n" in template
    assert "\nLOKI_PUBLISH_ADDRESS=127.0.0.1\n" in template


def test_exporters_bind_loopback_outside_docker_and_all_addresses_in_compose():
    assert SETTINGS["common"]["listen_address"] == "127.0.0.1"
    for name, service in SERVICES.items():
        if service["image"] == SERVICES["stack-config"]["image"] and name not in ("stack-config", "demo"):
            assert service["environment"]["LLMWATCH_COMMON__LISTEN_ADDRESS"] == "0.0.0.0", name


def test_prometheus_and_alertmanager_resolve_host_docker_internal():
    """LiteLLM's own /metrics (LITELLM_URL=http://host.docker.internal:4000 by default) and
    node-exporter are scraped on the host: on Linux the name exists only through extra_hosts."""
    from llmwatch.tools.stack_config import render

    template = dict(line.split("=", 1) for line in (REPO / "config" / "env.example").read_text().splitlines()
                    if re.match(r"[A-Z_0-9]+=", line))
    env = render.load_env({**template, "PROMETHEUS_PASSWORD": "long-enough-password"})
    hosts = {t.rsplit(":", 1)[0] for targets in render.prometheus_targets(env).values()
             for group in targets for t in group["targets"]}
    prometheus = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
    hosts |= {t.rsplit(":", 1)[0] for job in prometheus["scrape_configs"] for group in job.get("static_configs", [])
              for t in group["targets"]}
    assert "host.docker.internal" in hosts
    for name in ("prometheus", "alertmanager"):  # alertmanager: webhook receivers on the host
        assert "host.docker.internal:host-gateway" in SERVICES[name].get("extra_hosts", []), name
    # every other host Prometheus scrapes is a compose service (or itself)
    assert hosts - {"host.docker.internal", "localhost"} <= set(SERVICES)


def test_node_exporter_runs_in_the_host_network_on_the_gateway_address_only():
    service = SERVICES["node-exporter"]
    assert service["network_mode"] == "host" and service["pid"] == "host" and "networks" not in service
    assert "host.docker.internal:host-gateway" in service["extra_hosts"]
    # the listen address is the host-gateway address from /etc/hosts, not every interface
    script = service["entrypoint"][2]
    assert '--web.listen-address="$$(awk \'$$2 == "host.docker.internal" {print $$1; exit}\' /etc/hosts):9100"' in script
    assert not any(a.startswith("--web.listen-address") for a in service["command"])
    assert service["healthcheck"]["test"][-1] == "http://host.docker.internal:9100/"
    prometheus = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "node")
    assert job["static_configs"] == [{"targets": ["host.docker.internal:9100"],
                                      "labels": {"instance": "node-exporter:9100"}}]


def test_node_exporter_entrypoint_picks_the_gateway_address(tmp_path):
    """The entrypoint's shell, run on an /etc/hosts like Docker writes for extra_hosts."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n172.17.0.1\thost.docker.internal\n")
    script = SERVICES["node-exporter"]["entrypoint"][2].replace("$$", "$").replace("/etc/hosts", str(hosts))
    script = script.replace("exec /bin/node_exporter", "echo")
    result = subprocess.run(["sh", "-c", script, "node_exporter", "--path.rootfs=/host"], capture_output=True, text=True)
    assert result.stdout.split() == ["--web.listen-address=172.17.0.1:9100", "--path.rootfs=/host"]


def test_cadvisor_reads_containerd_state_and_the_docker_root():
    volumes = SERVICES["cadvisor"]["volumes"]
    assert "/run/containerd:/run/containerd:ro" in volumes
    assert "${LLMWATCH_DOCKER_ROOT:-/var/lib/docker}:${LLMWATCH_DOCKER_ROOT:-/var/lib/docker}:ro" in volumes


def test_external_urls_make_links_absolute():
    url = "http://${LLMWATCH_EXTERNAL_HOST:-localhost}:${%s:-%d}"
    assert f"--web.external-url=${{PROMETHEUS_EXTERNAL_URL:-{url % ('PROMETHEUS_PORT', 23001)}}}" in \
        SERVICES["prometheus"]["command"]
    assert f"--web.external-url=${{ALERTMANAGER_EXTERNAL_URL:-{url % ('ALERTMANAGER_PORT', 23003)}}}" in \
        SERVICES["alertmanager"]["command"]
    assert SERVICES["grafana"]["environment"]["GF_SERVER_ROOT_URL"] == \
        f"${{GRAFANA_EXTERNAL_URL:-{url % ('GRAFANA_PORT', 23000)}}}"
    assert SERVICES["stack-config"]["environment"]["LLMWATCH_RUNBOOK_URL"] == "${LLMWATCH_RUNBOOK_URL:-}"


def test_state_lives_in_named_volumes_and_every_service_restarts():
    for name, path in {"prometheus": "/prometheus", "alertmanager": "/alertmanager", "grafana": "/var/lib/grafana",
                       "loki": "/loki", "alloy": "/var/lib/alloy/data", "langfuse-exporter": "/var/lib/llmwatch"}.items():
        assert any(v.endswith(f":{path}") and not v.startswith((".", "/")) for v in SERVICES[name]["volumes"]), name
    assert "--storage.tsdb.retention.time=${PROMETHEUS_RETENTION:-30d}" in SERVICES["prometheus"]["command"]
    for name in LONG_RUNNING:
        assert SERVICES[name]["restart"] == "unless-stopped", name
    assert SERVICES["stack-config"]["restart"] == "no"


def test_every_long_running_service_has_a_healthcheck_or_says_why_not():
    text = (REPO / "docker-compose.yml").read_text()
    for name in LONG_RUNNING:
        if "healthcheck" in SERVICES[name]:
            assert SERVICES[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
        else:  # distroless Loki, and cAdvisor whose image has its own HEALTHCHECK
            block = text[text.index(f"\n  {name}:"):]
            block = block[:block.find("\n\n")]
            assert re.search(r"# (No healthcheck|The image has its own HEALTHCHECK)", block), name


DOCKER_API_CLIENTS = {"stack-config", "alloy", "cadvisor", "gpu-exporter", "vllm-exporter", "probe-exporter"}


def test_the_docker_socket_only_in_the_proxy_on_an_internal_network_of_its_clients():
    assert COMPOSE["networks"]["docker-api"] == {"internal": True}
    for name, service in SERVICES.items():
        mounts_socket = any("docker.sock" in v for v in service.get("volumes", []))
        assert mounts_socket == (name == "docker-proxy"), name
        networks = service.get("networks", [])
        assert ("docker-api" in networks) == (name in DOCKER_API_CLIENTS | {"docker-proxy"}), name
    assert SERVICES["docker-proxy"]["networks"] == ["docker-api"]  # not reachable from frontend or backend
    assert "${LLMWATCH_DOCKER_SOCKET:-/var/run/docker.sock}:/var/run/docker.sock:ro" in SERVICES["docker-proxy"]["volumes"]
    for name in ("gpu-exporter", "vllm-exporter", "probe-exporter", "stack-config"):
        assert SERVICES[name]["environment"]["LLMWATCH_DOCKER__HOST"] == "tcp://docker-proxy:2375"
    assert "--docker=tcp://docker-proxy:2375" in SERVICES["cadvisor"]["command"]
    assert 'host             = "tcp://docker-proxy:2375"' in (REPO / "config" / "alloy" / "config.alloy").read_text()


def proxy_allowlists() -> dict[str, re.Pattern]:
    """The socket proxy's -allow<METHOD>=<regexp> flags (compose's $$ is a $)."""
    found = {}
    for arg in SERVICES["docker-proxy"]["command"]:
        if match := re.fullmatch(r"-allow([A-Z]+)=(.*)", arg):
            found[match.group(1)] = re.compile(match.group(2).replace("$$", "$"))
    return found


# What llmwatch's clients of the Docker API ask (paths, without the query string): the exporters'
# docker SDK (version negotiation, container list for vLLM discovery, inspect for the GPU pid ->
# container map), stack-config (container list), cAdvisor (info, version, inspect), Alloy
# (discovery.docker: containers and networks; loki.source.docker: inspect and logs; events).
ASKED = ["/_ping", "/version", "/v1.41/version", "/v1.47/info", "/v1.41/containers/json",
         "/v1.41/containers/0123abcd/json", "/containers/vllm-llama/json", "/v1.41/containers/0123abcd/logs",
         "/v1.41/events", "/v1.41/networks"]
REFUSED = ["/v1.41/containers/0123abcd/archive", "/v1.41/containers/0123abcd/export", "/v1.41/images/json",
           "/v1.41/containers/0123abcd/stats", "/v1.41/containers/0123abcd/top", "/v1.41/containers/0123abcd/changes",
           "/v1.41/containers/0123abcd/attach/ws", "/v1.41/volumes", "/v1.41/secrets", "/v1.41/configs",
           "/v1.41/plugins", "/v1.41/system/df", "/v1.41/containers/json/../../images/json",
           "/v1.41/exec/0123/json", "/v1.41/swarm", "/v1.41/session", "/v1.41/containers/a/json/x"]


def test_socket_proxy_allows_exactly_the_reads_llmwatch_makes():
    allow = proxy_allowlists()
    assert set(allow) == {"GET", "HEAD"}  # no POST, PUT, DELETE...: nothing can be started, changed or run
    for path in ASKED:
        assert allow["GET"].search(path), path
    for path in REFUSED:
        assert not allow["GET"].search(path), path
    assert allow["HEAD"].search("/_ping") and not allow["HEAD"].search("/v1.41/containers/json")
    # the proxy itself: no capabilities, read-only, the socket read-only
    proxy = SERVICES["docker-proxy"]
    assert proxy["cap_drop"] == ["ALL"] and proxy["read_only"] is True
    assert proxy["healthcheck"]["test"] == ["CMD", "/healthcheck"] and "-allowhealthcheck" in proxy["command"]


@pytest.mark.parametrize("exporter", sorted(EXPORTER_PORTS))
def test_exporter_services_are_switchable_and_match_their_settings(exporter):
    service = SERVICES[f"{exporter}-exporter"]
    port = SETTINGS[exporter]["port"]
    assert port == EXPORTER_PORTS[exporter]
    assert service["profiles"] == [exporter]
    assert service["command"] == [exporter]
    assert service["image"] == SERVICES["stack-config"]["image"]  # one image, a command per exporter
    assert service["healthcheck"]["test"][-1] == str(port)
    job, address = EXPORTER_PROFILES[exporter]
    assert address == f"{exporter}-exporter:{port}"  # the Prometheus target stack-config writes
    for key, value in service.get("environment", {}).items():
        if key.endswith(("MASTER_KEY", "SECRET_KEY", "PUBLIC_KEY", "DATABASE_URL", "PASSWORD", "_KEY")):
            pytest.fail(f"{key}: a secret goes in a file (LLMWATCH_..._FILE), not the environment")


def test_gpu_exporter_gets_the_nvidia_runtime_and_host_pids():
    service = SERVICES["gpu-exporter"]
    assert service["pid"] == "host"
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu", "utility"]}]


def test_prometheus_and_alertmanager_wait_for_their_configuration():
    for name in ("prometheus", "alertmanager"):
        assert SERVICES[name]["depends_on"] == {"stack-config": {"condition": "service_completed_successfully"}}
    mounts = SERVICES["stack-config"]["volumes"]
    assert "prometheus-stack:/out/prometheus" in mounts and "alertmanager-stack:/out/alertmanager" in mounts
    assert "prometheus-stack:/etc/prometheus/stack:ro" in SERVICES["prometheus"]["volumes"]
    assert "alertmanager-stack:/etc/alertmanager/stack:ro" in SERVICES["alertmanager"]["volumes"]
    # every variable stack-config reads is passed through from .env
    from llmwatch.tools.stack_config import render

    source = Path(render.__file__).read_text()
    read = set(re.findall(r'get\("([A-Z_]+)"\)', source)) | set(re.findall(r'"((?:ALERT|LITELLM)_[A-Z_]+|WATCHDOG_URL)"', source))
    assert read <= set(SERVICES["stack-config"]["environment"]), read - set(SERVICES["stack-config"]["environment"])


def test_env_template_names_every_variable_compose_reads():
    text = (REPO / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_0-9]+)", text)) - {"COMPOSE_PROJECT_NAME"}  # compose's own
    template = {line.split("=", 1)[0] for line in (REPO / "config" / "env.example").read_text().splitlines()
                if re.match(r"[A-Z_0-9]+=", line)}
    assert used <= template, used - template
    # no default password anywhere: the two generated secrets are empty in the template and required by compose
    for secret in ("GRAFANA_ADMIN_PASSWORD", "PROMETHEUS_PASSWORD"):
        assert f"\n{secret}=\n" in (REPO / "config" / "env.example").read_text()
        assert re.search(r"\$\{" + secret + r":\?", text)


def test_loki_keeps_logs_for_the_retention_and_deletes_them():
    loki = yaml.safe_load((REPO / "config" / "loki" / "loki.yml").read_text())
    assert loki["server"]["http_listen_port"] == 23002
    schema = loki["schema_config"]["configs"][-1]
    assert (schema["store"], schema["object_store"], schema["schema"], schema["index"]["period"]) == \
        ("tsdb", "filesystem", "v13", "24h")
    compactor = loki["compactor"]
    assert compactor["retention_enabled"] is True and compactor["delete_request_store"] == "filesystem"
    assert loki["limits_config"]["retention_period"] == "${LOKI_RETENTION:-744h}"
    assert "-config.expand-env=true" in SERVICES["loki"]["command"]  # or the ${...} would be read literally
    assert loki["common"]["path_prefix"] == "/loki" and "loki-data:/loki" in SERVICES["loki"]["volumes"]
    assert loki["analytics"]["reporting_enabled"] is False


def test_alloy_labels_every_container_and_ships_to_loki():
    alloy = (REPO / "config" / "alloy" / "config.alloy").read_text()
    for label in ("container", "compose_service", "compose_project", "stream"):
        assert f'target_label  = "{label}"' in alloy, label
    assert 'url = "http://loki:23002/loki/api/v1/push"' in alloy
    assert "docker.sock" not in alloy  # only the proxy


def test_grafana_requires_login_and_provisions_the_dashboards_folder():
    env = SERVICES["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "${GRAFANA_ANONYMOUS_VIEWER:-false}"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    provider = yaml.safe_load((REPO / "config/grafana/provisioning/dashboards/dashboards.yml").read_text())["providers"][0]
    assert provider["options"]["foldersFromFilesStructure"] is True and "folder" not in provider
    assert provider["allowUiUpdates"] is False  # a UI save is refused, not silently overwritten later
    assert f"./dashboards:{provider['options']['path']}:ro" in SERVICES["grafana"]["volumes"]
    assert "./config/grafana/provisioning:/etc/grafana/provisioning:ro" in SERVICES["grafana"]["volumes"]


def test_insights_exporter_is_always_on_and_reads_prometheus_with_its_password():
    service = SERVICES["insights-exporter"]
    assert "profiles" not in service and service["command"] == ["insights"]
    assert service["healthcheck"]["test"][-1] == str(SETTINGS["insights"]["port"]) == "9904"
    assert service["environment"]["LLMWATCH_INSIGHTS__PROMETHEUS_PASSWORD_FILE"] == "/etc/llmwatch/secrets/prometheus_password"
    assert SETTINGS["insights"]["prometheus_url"] == "http://prometheus:23001"
    prometheus = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "llmwatch-insights")
    assert job["static_configs"] == [{"targets": ["insights-exporter:9904"]}]


def test_demo_profile_runs_simulated_upstreams_and_an_exporter_of_each_kind(tmp_path):
    from llmwatch.tools.stack_config import cli as stack_main
    from llmwatch.tools.stack_config import render

    demo = {name: s for name, s in SERVICES.items() if "demo" in s.get("profiles", [])}
    assert set(demo) == {"demo"} | {a.split(":")[0] for a in render.DEMO_EXPORTERS.values()}
    for job, address in render.DEMO_EXPORTERS.items():
        name, port = address.split(":")
        exporter = job.removeprefix("llmwatch-")
        # the GPU exporter runs over the demo's simulated node; the others read the demo's upstreams
        expected = ["demo", "--role", "gpu", "--load-url", "http://demo:8000/load"] if exporter == "gpu" else [exporter]
        assert demo[name]["command"] == expected
        assert demo[name]["healthcheck"]["test"][-1] == port
    assert "prometheus-stack:/out/prometheus" in demo["demo"]["volumes"]
    assert demo["demo"]["depends_on"] == {"stack-config": {"condition": "service_completed_successfully"}}
    entry = demo["demo"]["entrypoint"]
    assert entry[entry.index("--targets-dir") + 1] == "/out/prometheus/targets"
    # every demo target file matches a job's file_sd glob in prometheus.yml
    config = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
    globs = {job["job_name"]: job["file_sd_configs"][0]["files"][0] for job in config["scrape_configs"]
             if "file_sd_configs" in job}
    for name in render.demo_targets():
        job = name.removesuffix(render.DEMO_SUFFIX)
        assert fnmatch.fnmatch(f"stack/targets/{name}", globs[job]), (name, globs[job])
    # a stale demo file is removed by the next stack-config run, and COMPOSE_PROFILES=demo is valid
    stale = tmp_path / "prometheus" / "targets" / "llmwatch-gpu-demo.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("[]")
    env = {"COMPOSE_PROFILES": "demo", "PROMETHEUS_PASSWORD": "long-enough-password"}
    with pytest.MonkeyPatch.context() as m:
        for key, value in env.items():
            m.setenv(key, value)
        assert stack_main.main(["--out", str(tmp_path)]) == 0
    assert not stale.exists()
    assert json.loads((tmp_path / "prometheus" / "targets" / "llmwatch-gpu.json").read_text()) == []


class FakeDockerApi(FakeServer):
    """GET /containers/json as the socket proxy answers it: the containers of some compose projects."""

    def __init__(self, containers: list[dict]):
        super().__init__()
        self.containers = containers
        self.asked = self.requests
        self.host = f"tcp://127.0.0.1:{self.port}"

    def answer(self, path, headers):
        return 200, "application/json", json.dumps(self.containers).encode()


def container(project: str, service: str, oneoff: str = "False") -> dict:
    return {"Id": f"{project}-{service}", "Labels": {"com.docker.compose.project": project,
                                                     "com.docker.compose.service": service,
                                                     "com.docker.compose.oneoff": oneoff}}


def test_stack_config_scrapes_the_exporters_compose_made_containers_for(tmp_path, monkeypatch):
    """`docker compose --profile demo --profile litellm up` with .env's COMPOSE_PROFILES naming every
    exporter: only the LiteLLM exporter (and LiteLLM's /metrics) get targets, so no ExporterDown
    fires for exporters that are not running."""
    from llmwatch.tools.stack_config import cli as stack_main

    api = FakeDockerApi([container("llmwatch", "litellm-exporter"), container("llmwatch", "demo"),
                         container("llmwatch", "insights-exporter"),
                         container("other", "gpu-exporter"),  # another project's
                         container("llmwatch", "vllm-exporter", oneoff="True")]).start()  # a `compose run`
    assert "LLMWATCH_DOCKER__HOST" in SERVICES["stack-config"]["environment"]
    assert SERVICES["stack-config"]["environment"]["LLMWATCH_COMPOSE_PROJECT"] == "${COMPOSE_PROJECT_NAME:-llmwatch}"
    assert "docker-proxy" in SERVICES["stack-config"]["depends_on"]
    for key, value in {"COMPOSE_PROFILES": "gpu,vllm,litellm,langfuse,probe", "PROMETHEUS_PASSWORD": "long-enough-password",
                       "LITELLM_URL": "http://host.docker.internal:4000", "LLMWATCH_DOCKER__HOST": api.host,
                       "LLMWATCH_COMPOSE_PROJECT": "llmwatch"}.items():
        monkeypatch.setenv(key, value)
    assert stack_main.main(["--out", str(tmp_path)]) == 0
    targets = {p.name: json.loads(p.read_text()) for p in (tmp_path / "prometheus" / "targets").glob("*.json")}
    assert targets["llmwatch-litellm.json"] == [{"targets": ["litellm-exporter:9901"]}]
    assert targets["litellm.json"][0]["targets"] == ["host.docker.internal:4000"]
    for job in ("llmwatch-gpu", "llmwatch-vllm", "llmwatch-langfuse", "llmwatch-probe"):
        assert targets[f"{job}.json"] == [], job
    assert api.asked and "all=1" in api.asked[0] and "com.docker.compose.project%3Dllmwatch" in api.asked[0]
    api.close()


def test_stack_config_stops_when_it_cannot_ask_docker(tmp_path, monkeypatch):
    from llmwatch.tools.stack_config import cli as stack_main

    for key, value in {"PROMETHEUS_PASSWORD": "long-enough-password", "LLMWATCH_DOCKER__HOST": "tcp://127.0.0.1:9",
                       "LLMWATCH_COMPOSE_PROJECT": "llmwatch"}.items():
        monkeypatch.setenv(key, value)
    assert stack_main.main(["--out", str(tmp_path)]) == 1
    assert not (tmp_path / "prometheus" / "targets").exists()


def test_stack_config_check_only_reads_the_environment(tmp_path, monkeypatch):
    from llmwatch.tools.stack_config import cli as stack_main

    monkeypatch.setenv("PROMETHEUS_PASSWORD", "long-enough-password")
    monkeypatch.setenv("LLMWATCH_DOCKER__HOST", "tcp://127.0.0.1:9")  # not asked
    assert stack_main.main(["--out", str(tmp_path), "--check"]) == 0
    assert not any(tmp_path.iterdir())
    monkeypatch.setenv("PROMETHEUS_PASSWORD", "short")
    assert stack_main.main(["--out", str(tmp_path), "--check"]) == 2


# What people reach and what Grafana reads; Prometheus and Loki are also on backend (scrapes, pushes).
FRONTEND = {"grafana", "prometheus", "loki", "alertmanager"}
BACKEND_TOO = {"prometheus", "loki"}


def test_frontend_backend_and_docker_api_networks_keep_apart_what_need_not_meet():
    """Grafana (published, runs plugins) cannot reach the exporters, cAdvisor or Alloy; the exporters
    (which parse what upstreams send) cannot reach Grafana or Alertmanager; only the proxy's clients
    reach the proxy, on a network with no route out."""
    assert set(COMPOSE["networks"]) == {"frontend", "backend", "docker-api"}
    assert COMPOSE["networks"]["docker-api"] == {"internal": True}
    for name, service in SERVICES.items():
        if name == "node-exporter":
            assert service["network_mode"] == "host"
            continue
        networks = set(service["networks"])
        assert ("frontend" in networks) == (name in FRONTEND), name
        if name in FRONTEND:
            assert networks == {"frontend"} | ({"backend"} if name in BACKEND_TOO else set()), name
        elif name not in ("docker-proxy", "stack-config"):
            assert "backend" in networks, name
    assert SERVICES["stack-config"]["networks"] == ["docker-api"]
    # nothing published or on the frontend shares a network with the proxy
    exposed = {name for name, service in SERVICES.items() if service.get("ports")} | FRONTEND
    for name in exposed:
        assert not set(SERVICES[name]["networks"]) & set(SERVICES["docker-proxy"]["networks"]), name


# Services that run as root, each for the reason its comment in docker-compose.yml gives.
ROOT = {"docker-proxy": "the socket's owner", "stack-config": "gives each secret file to its reader (CAP_CHOWN)", "alloy": "the image's user; non-root is experimental upstream",
        "cadvisor": "reads Docker's data root and containerd's state"}
MEMORY = {"prometheus": "4g", "grafana": "1g", "loki": "1g", "alloy": "512m", "cadvisor": "512m",
          "docker-proxy": "64m", "alertmanager": "256m"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_runs_with_least_privilege(name):
    service = SERVICES[name]
    assert service["cap_drop"] == ["ALL"], name
    assert service["security_opt"] == ["no-new-privileges:true"], name
    assert service["read_only"] is True, name
    assert "privileged" not in service, name
    assert service.get("cap_add", []) == {"cadvisor": ["SYSLOG"], "stack-config": ["CHOWN"]}.get(name, []), name
    assert service["mem_limit"] == MEMORY.get(name, "256m"), name
    user = str(service["user"])
    assert (user.split(":")[0] in ("0", "root")) == (name in ROOT), f"{name} runs as {user}"


def test_cadvisor_is_not_privileged_and_reads_the_kernel_log():
    service = SERVICES["cadvisor"]
    assert "privileged" not in service and service["devices"] == ["/dev/kmsg"] and service["cap_add"] == ["SYSLOG"]
    assert all(v.endswith(":ro") for v in service["volumes"])


def test_prometheus_lifecycle_endpoints_are_off():
    """Nothing reloads or stops Prometheus over HTTP; with the lifecycle API on, anyone holding the
    password could POST /-/quit."""
    assert not any("enable-lifecycle" in arg for arg in SERVICES["prometheus"]["command"])


# .env's secrets: only stack-config has them in its environment, and writes each as a file.
SECRETS = {"PROMETHEUS_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "LITELLM_MASTER_KEY", "LITELLM_METRICS_KEY",
           "PROBE_LITELLM_KEY", "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_DATABASE_URL",
           "ALERT_SLACK_API_URL", "ALERT_PAGERDUTY_ROUTING_KEY", "ALERT_SMTP_PASSWORD", "ALERT_WEBHOOK_URL",
           "WATCHDOG_URL", "REMOTE_WRITE_PASSWORD", "REMOTE_WRITE_BEARER_TOKEN"}


def test_no_service_but_stack_config_has_a_secret_in_its_environment():
    """The Docker API's inspect returns a container's environment to every client of the socket
    proxy; the secrets are files instead, each in the volume of the services that read it."""
    for name, service in SERVICES.items():
        text = json.dumps(service.get("environment", {}))
        found = {secret for secret in SECRETS if "${" + secret in text}
        assert not found or name == "stack-config", f"{name} has {found} in its environment"
    assert {s for s in SECRETS if "${" + s in json.dumps(SERVICES["stack-config"]["environment"])} == SECRETS
    readers = {name for name, service in SERVICES.items() for volume in service.get("volumes", [])
               if volume.split(":")[0] in ("grafana-secrets", "exporter-secrets", "prometheus-stack", "alertmanager-stack")}
    assert readers == {"stack-config", "grafana", "prometheus", "alertmanager", "demo", "insights-exporter",
                       "litellm-exporter", "probe-exporter", "langfuse-exporter"}
    for name in readers - {"stack-config", "demo"}:  # the demo writes its targets; the others only read
        assert all(v.endswith(":ro") for v in SERVICES[name]["volumes"] if "secrets" in v or "-stack" in v), name


def test_secret_files_belong_to_the_user_each_reader_runs_as():
    from llmwatch.tools.stack_config import render

    uid = lambda name: int(str(SERVICES[name]["user"]).split(":")[0]) if str(SERVICES[name]["user"])[0].isdigit() else None
    assert uid("prometheus") == uid("alertmanager") == render.PROMETHEUS_UID
    assert uid("grafana") == render.GRAFANA_UID
    assert SERVICES["insights-exporter"]["user"] == "llmwatch"
    assert "--uid 10001 llmwatch" in (REPO / "docker" / "Dockerfile").read_text() and render.EXPORTER_UID == 10001


def test_exporters_and_grafana_read_their_secrets_from_files_stack_config_writes():
    from llmwatch.tools.stack_config import render

    files = set(render.EXPORTER_SECRETS)
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            if key.endswith("_FILE") and value.startswith("/etc/llmwatch/secrets/"):
                assert value.rsplit("/", 1)[1] in files, (name, key)
                assert "exporter-secrets:/etc/llmwatch/secrets:ro" in service["volumes"], name
                assert service["depends_on"]["stack-config"] == {"condition": "service_completed_successfully"}, name
    grafana = SERVICES["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/etc/grafana/secrets/admin_password"
    assert "grafana-secrets:/etc/grafana/secrets:ro" in grafana["volumes"]
    assert grafana["depends_on"]["stack-config"] == {"condition": "service_completed_successfully"}
    assert "grafana-secrets:/out/grafana" in SERVICES["stack-config"]["volumes"]
    assert "exporter-secrets:/out/exporters" in SERVICES["stack-config"]["volumes"]
    prometheus = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "litellm")
    assert job["authorization"]["credentials_file"] == "stack/litellm_scrape_key"


def test_healthchecks_put_no_password_on_a_command_line():
    """`ps` on the host shows every process's arguments."""
    for name, service in SERVICES.items():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        assert "password" not in test and "@localhost" not in test and "Authorization" not in test, name
    for name, port, folder in (("prometheus", 23001, "/etc/prometheus/stack"),
                               ("alertmanager", 23003, "/etc/alertmanager/stack")):
        assert SERVICES[name]["healthcheck"]["test"] == [
            "CMD-SHELL", f"nc localhost {port} < {folder}/healthcheck.http | head -n 1 | grep -q ' 200 '"]


def test_lokis_ruler_reads_alertmanagers_credentials_from_the_file_stack_config_writes():
    """Loki's log-based alerts reach Alertmanager with the stack's basic auth, read from a file in a
    volume only stack-config writes and only Loki reads (no password in Loki's environment)."""
    client = yaml.safe_load((REPO / "config" / "loki" / "loki.yml").read_text())["ruler"]["alertmanager_client"]
    assert client["type"] == "Basic" and "basic_auth_password" not in client
    mounts = {m.split(":")[1]: m.split(":")[0] for m in SERVICES["loki"]["volumes"]}
    directory, name = client["credentials_file"].rsplit("/", 1)
    volume = mounts[directory]
    assert f"{volume}:/out/loki" in SERVICES["stack-config"]["volumes"] and name == "alertmanager_credentials"
    readers = [s for s, service in SERVICES.items() if any(v.startswith(f"{volume}:") for v in service.get("volumes", []))]
    assert sorted(readers) == ["loki", "stack-config"]
