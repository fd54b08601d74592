"""docker-compose.yml agrees with the repository: files it builds from exist, ports match settings."""

from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]


def test_gpu_exporter_service_matches_its_settings():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    settings = tomllib.loads((REPO / "config" / "settings.toml").read_text())
    service = compose["services"]["gpu-exporter"]
    assert (REPO / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    port = str(settings["gpu"]["port"])
    assert service["healthcheck"]["test"][-1] == port
    assert all(p.startswith("127.0.0.1:") and p.endswith(f":{port}") for p in service["ports"])
    assert service["pid"] == "host"  # NVML pids are host pids
    assert ":latest" not in service["image"]


def test_vllm_exporter_service_matches_its_settings():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    settings = tomllib.loads((REPO / "config" / "settings.toml").read_text())
    service = compose["services"]["vllm-exporter"]
    port = str(settings["vllm"]["port"])
    assert service["command"] == ["vllm"]
    assert service["healthcheck"]["test"][-1] == port
    assert all(p.startswith("127.0.0.1:") and p.endswith(f":{port}") for p in service["ports"])
    # the default host_address must resolve inside the container
    assert f"{settings['vllm']['host_address']}:host-gateway" in service["extra_hosts"]
    assert service["image"] == compose["services"]["gpu-exporter"]["image"]  # one image, a command per exporter


def test_litellm_and_langfuse_exporter_services_match_their_settings():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    settings = tomllib.loads((REPO / "config" / "settings.toml").read_text())
    for name, secrets in (("litellm", ["MASTER_KEY"]), ("langfuse", ["PUBLIC_KEY", "SECRET_KEY", "DATABASE_URL"])):
        service = compose["services"][f"{name}-exporter"]
        port = str(settings[name]["port"])
        assert service["command"] == [name]
        assert service["healthcheck"]["test"][-1] == port
        assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
        assert service["image"] == compose["services"]["gpu-exporter"]["image"]
        for key in secrets:  # interpolated from the environment or .env, never written here
            assert service["environment"][f"LLMWATCH_{name.upper()}__{key}"].startswith("${")
