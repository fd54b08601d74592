"""Remote write to a long-term store (README, "Long-term storage"): the REMOTE_WRITE_* variables
stack-config checks and renders into Prometheus' configuration, that configuration accepted by the
pinned promtool, and a round trip: a Prometheus with the rendered remote_write sends its samples to
a second Prometheus (its remote-write receiver behind basic auth, as a long-term store would be),
where they land with their labels; with a wrong password they are refused, counted, and none lands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from llmwatch.simulation.server import FakeServer
from llmwatch.tools.stack_config import cli as stack_main
from llmwatch.tools.stack_config import render
from tests.binaries import binary
from tests.conftest import require_binary
from tests.procs import Process, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "stack-password-1234"
STORE_PASSWORD = "store-password-5678"
STORE_URL = "https://mimir.example.com/api/v1/push"
# every variable stack-config reads that a test here sets; cleared before each run
PREFIXES = ("REMOTE_WRITE_", "LLMWATCH_", "ALERT_", "LITELLM_", "LANGFUSE_", "GRAFANA_", "COMPOSE_PROFILES",
            "PROMETHEUS_PASSWORD", "WATCHDOG_URL", "PROBE_LITELLM_KEY")


def stack_config(tmp_path: Path, monkeypatch, env: dict[str, str], prometheus_dir: Path | None = None,
                 *extra: str) -> int:
    """``llmwatch stack-config --out tmp_path/out`` in this process, not as root (no chown)."""
    for key in list(os.environ):
        if key.startswith(PREFIXES):
            monkeypatch.delenv(key)
    for key, value in {"PROMETHEUS_PASSWORD": PASSWORD, **env}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(stack_main.os, "geteuid", lambda: 1000)
    args = ["--out", str(tmp_path / "out"), *extra]
    if prometheus_dir is not None:
        args += ["--prometheus-dir", str(prometheus_dir)]
    return stack_main.main(args)


def rendered(tmp_path: Path) -> dict:
    return yaml.safe_load((tmp_path / "out" / "prometheus" / "prometheus.yml").read_text())


def with_ca(tmp_path: Path) -> Path:
    """A copy of config/prometheus with a CA certificate in it, as the user would add one."""
    prometheus_dir = tmp_path / "prometheus"
    shutil.copytree(REPO / "config" / "prometheus", prometheus_dir)
    (prometheus_dir / "store-ca.pem").write_text(CA_PEM)
    return prometheus_dir


# A self-signed certificate (valid until 2126; its key is thrown away): what a store's CA looks like.
CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBkjCCATmgAwIBAgIUB6ASJ97YngJtajRvuS9+0pxRYWcwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTbGxtd2F0Y2gtdGVzdC1zdG9yZTAgFw0yNjEyMDIxMzA0MTda
GA8yMTI2MTEwODEzMDQxN1owHjEcMBoGA1UEAwwTbGxtd2F0Y2gtdGVzdC1zdG9y
ZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNmYg0rAv0KlaiAL1mxPnixVD/ku
Lms1kP9zMc11e5EY77NKZGllJSdLAitgsnTwuI13tu17xZ9tksoD5YamOoGjUzBR
MB0GA1UdDgQWBBTrnhhCUCrZi0f/06lHX45jpYB3qzAfBgNVHSMEGDAWgBTrnhhC
UCrZi0f/06lHX45jpYB3qzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cA
MEQCIHRCtFGb2f8BTSvRijtB5qpEZ8//C4Vh68Kp7iJek1fvAiB0joCaaaazInQK
q0IWGIorR+LPxQOD/LWo/8toP+N7Ug==
-----END CERTIFICATE-----
"""


# --- what stack-config renders --------------------------------------------------------------------

def test_without_a_url_prometheus_runs_the_repositorys_configuration_from_its_volume(tmp_path, monkeypatch):
    """The rendered file sits in stack/: every relative path now starts from there."""
    assert stack_config(tmp_path, monkeypatch, {}) == 0
    config, base = rendered(tmp_path), yaml.safe_load((REPO / "config/prometheus/prometheus.yml").read_text())
    assert "remote_write" not in config
    assert config["rule_files"] == ["../rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["basic_auth"]["password_file"] == "prometheus_password"
    litellm = next(job for job in config["scrape_configs"] if job["job_name"] == "litellm")
    assert litellm["authorization"]["credentials_file"] == "litellm_scrape_key"
    assert litellm["file_sd_configs"] == [{"files": ["targets/litellm*.json"]}]
    # nothing else changed
    assert [j["job_name"] for j in config["scrape_configs"]] == [j["job_name"] for j in base["scrape_configs"]]
    assert config["global"] == base["global"]
    for name in (render.REMOTE_WRITE_PASSWORD_FILE, render.REMOTE_WRITE_TOKEN_FILE):
        assert (tmp_path / "out" / "prometheus" / name).read_text() == ""


def test_remote_write_is_rendered_with_its_secrets_in_0600_files(tmp_path, monkeypatch):
    prometheus_dir = with_ca(tmp_path)
    assert stack_config(tmp_path, monkeypatch, {
        "REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_USER": "llmwatch", "REMOTE_WRITE_PASSWORD": STORE_PASSWORD,
        "REMOTE_WRITE_HEADERS": "X-Scope-OrgID=team-a, X-Extra=1", "REMOTE_WRITE_CA_FILE": "store-ca.pem",
        "REMOTE_WRITE_KEEP": "vllm:.*|up"}, prometheus_dir) == 0
    out = tmp_path / "out" / "prometheus"
    assert STORE_PASSWORD not in (out / "prometheus.yml").read_text()
    assert rendered(tmp_path)["remote_write"] == [{
        "name": "long-term", "url": STORE_URL, "send_exemplars": False,
        "queue_config": {"capacity": 10000, "max_shards": 10, "min_shards": 1, "max_samples_per_send": 2000,
                         "batch_send_deadline": "5s", "min_backoff": "30ms", "max_backoff": "5s"},
        "basic_auth": {"username": "llmwatch", "password_file": "remote_write_password"},
        "headers": {"X-Scope-OrgID": "team-a", "X-Extra": "1"},
        "tls_config": {"ca_file": "../store-ca.pem"},
        "write_relabel_configs": [{"source_labels": ["__name__"], "regex": "vllm:.*|up", "action": "keep"}]}]
    password = out / "remote_write_password"
    assert password.read_text() == STORE_PASSWORD and password.stat().st_mode & 0o777 == 0o600


def test_a_bearer_token_instead_and_an_earlier_secret_is_emptied(tmp_path, monkeypatch):
    assert stack_config(tmp_path, monkeypatch, {"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_USER": "llmwatch",
                                                "REMOTE_WRITE_PASSWORD": STORE_PASSWORD}) == 0
    assert stack_config(tmp_path, monkeypatch, {"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_BEARER_TOKEN": "tok-123",
                                                "REMOTE_WRITE_TLS_INSECURE": "true"}) == 0
    entry = rendered(tmp_path)["remote_write"][0]
    assert entry["authorization"] == {"type": "Bearer", "credentials_file": "remote_write_token"}
    assert entry["tls_config"] == {"insecure_skip_verify": True} and "basic_auth" not in entry
    out = tmp_path / "out" / "prometheus"
    assert (out / "remote_write_token").read_text() == "tok-123"
    assert (out / "remote_write_token").stat().st_mode & 0o777 == 0o600
    assert (out / "remote_write_password").read_text() == ""
    assert "tok-123" not in (out / "prometheus.yml").read_text()


@pytest.mark.parametrize("env, message", [
    ({"REMOTE_WRITE_URL": "ftp://store/api/v1/push"},
     "REMOTE_WRITE_URL: 'ftp://store/api/v1/push' is not an http(s) URL such as https://mimir.example.com/api/v1/push"),
    ({"REMOTE_WRITE_URL": "https://me:hunter2hunter2@store/api/v1/push"},
     "REMOTE_WRITE_URL: 'https://***@store/api/v1/push' must not carry credentials (user:password@); give them in "
     "their own settings"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_USER": "llmwatch"},
     "REMOTE_WRITE_USER and REMOTE_WRITE_PASSWORD go together: set both or neither"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_USER": "a", "REMOTE_WRITE_PASSWORD": "b", "REMOTE_WRITE_BEARER_TOKEN": "c"},
     "REMOTE_WRITE_BEARER_TOKEN and REMOTE_WRITE_USER/REMOTE_WRITE_PASSWORD are two ways to log in; Prometheus sends "
     "one: set either"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_BEARER_TOKEN": "two words"},
     "REMOTE_WRITE_BEARER_TOKEN contains a space; a key is one word"),
    ({"REMOTE_WRITE_URL": "http://victoria:8428/api/v1/write", "REMOTE_WRITE_TLS_INSECURE": "true"},
     "REMOTE_WRITE_TLS_INSECURE=true applies to an https REMOTE_WRITE_URL only"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_TLS_INSECURE": "yes"},
     "REMOTE_WRITE_TLS_INSECURE must be true or false, got 'yes'"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_CA_FILE": "/etc/ssl/ca.pem"},
     "REMOTE_WRITE_CA_FILE is the name of a file in config/prometheus/ (such as remote-write-ca.pem), not a path; "
     "got '/etc/ssl/ca.pem'"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_CA_FILE": "missing.pem"},
     "REMOTE_WRITE_CA_FILE: cannot read config/prometheus/missing.pem: No such file or directory"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_CA_FILE": "prometheus.yml"},
     "REMOTE_WRITE_CA_FILE: config/prometheus/prometheus.yml holds no PEM certificate"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_HEADERS": "X-Scope-OrgID"},
     "REMOTE_WRITE_HEADERS must be Name=value pairs separated by commas, such as X-Scope-OrgID=llmwatch"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_HEADERS": "Authorization=Basic abc"},
     "REMOTE_WRITE_HEADERS cannot set Authorization: use REMOTE_WRITE_USER and REMOTE_WRITE_PASSWORD, or "
     "REMOTE_WRITE_BEARER_TOKEN"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_HEADERS": "X-Scope-OrgID=a,Content-Type=text/plain"},
     "REMOTE_WRITE_HEADERS cannot set Content-Type: Prometheus sets it itself"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_KEEP": "vllm:(.*"},
     "REMOTE_WRITE_KEEP is not a regular expression: missing ), unterminated subpattern at position 5"),
    ({"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_KEEP": "(?!go_).*"},
     "REMOTE_WRITE_KEEP uses lookaround or a back-reference, which Prometheus' regular expressions (RE2) do not have"),
    ({"REMOTE_WRITE_PASSWORD": "forgotten-url", "REMOTE_WRITE_TLS_INSECURE": "true"},
     "REMOTE_WRITE_PASSWORD, REMOTE_WRITE_TLS_INSECURE set but REMOTE_WRITE_URL is empty (remote write is off): "
     "give the store's URL, or empty them"),
], ids=lambda v: "" if isinstance(v, dict) else v.split()[0].rstrip(":"))
def test_a_bad_value_stops_with_one_line_naming_the_variable(tmp_path, monkeypatch, capsys, env, message):
    assert stack_config(tmp_path, monkeypatch, env, REPO / "config" / "prometheus") == 2
    assert capsys.readouterr().err == f"llmwatch stack-config: {message}\n"
    assert not (tmp_path / "out").exists()
    secret = env.get("REMOTE_WRITE_PASSWORD", "hunter2hunter2")
    assert secret not in message


def test_check_only_reads_the_ca_file_too(tmp_path, monkeypatch):
    """./scripts/up runs `stack-config --check` before anything starts."""
    env = {"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_CA_FILE": "store-ca.pem"}
    assert stack_config(tmp_path, monkeypatch, env, REPO / "config" / "prometheus", "--check") == 2
    assert stack_config(tmp_path, monkeypatch, env, with_ca(tmp_path), "--check") == 0


def test_compose_runs_the_rendered_configuration():
    """Prometheus reads what stack-config wrote into its volume; stack-config reads the repository's."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert "--config.file=/etc/prometheus/stack/prometheus.yml" in services["prometheus"]["command"]
    assert "prometheus-stack:/etc/prometheus/stack:ro" in services["prometheus"]["volumes"]
    config = services["stack-config"]
    assert "./config/prometheus:/etc/llmwatch/prometheus:ro" in config["volumes"]
    entrypoint = config["entrypoint"]
    assert entrypoint[entrypoint.index("--prometheus-dir") + 1] == "/etc/llmwatch/prometheus"


# --- the pinned promtool and Prometheus -----------------------------------------------------------

def prometheus_layout(tmp_path: Path, prometheus_dir: Path) -> Path:
    """config/prometheus with the stack-config output as its stack/ folder, as Prometheus' container
    mounts them; the rendered prometheus.yml in it."""
    shutil.rmtree(prometheus_dir / "stack")
    shutil.copytree(tmp_path / "out" / "prometheus", prometheus_dir / "stack")
    return prometheus_dir / "stack" / "prometheus.yml"


@pytest.mark.integration
@pytest.mark.parametrize("auth", [
    {"REMOTE_WRITE_USER": "llmwatch", "REMOTE_WRITE_PASSWORD": STORE_PASSWORD, "REMOTE_WRITE_CA_FILE": "store-ca.pem"},
    {"REMOTE_WRITE_BEARER_TOKEN": "tok-123", "REMOTE_WRITE_TLS_INSECURE": "true"},
    {}], ids=["basic-auth-and-ca", "bearer-token", "off"])
def test_promtool_accepts_the_rendered_configuration(tmp_path, monkeypatch, auth):
    promtool = require_binary("promtool")
    prometheus_dir = with_ca(tmp_path)
    env = {"REMOTE_WRITE_URL": STORE_URL, "REMOTE_WRITE_HEADERS": "X-Scope-OrgID=team-a",
           "REMOTE_WRITE_KEEP": "vllm:.*|llmwatch_.*|.+:.+|up", **auth} if auth else {}
    assert stack_config(tmp_path, monkeypatch, env, prometheus_dir) == 0
    config = prometheus_layout(tmp_path, prometheus_dir)
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = len(list((REPO / "config" / "prometheus" / "rules").glob("*.yml")))
    assert f"{rule_files} rule files found" in result.stdout  # ../rules/*.yml found from stack/


class Exposition(FakeServer):
    """A /metrics that always answers the same text: the vLLM exporter's scrape of the reference
    fleet (tests/test_series_budget.py), a load with the label sets of the real thing."""

    def __init__(self, text: str):
        super().__init__()
        self.body = text.encode()
        self.address = f"127.0.0.1:{self.port}"

    def answer(self, path, headers):
        return 200, "text/plain; version=0.0.4", self.body


def own_metrics(url: str) -> dict[tuple[str, str], float]:
    """A Prometheus' own remote-write counters by (name, remote_name), and the samples its head
    appended (summed over their ``type``), read from its /metrics."""
    text = httpx.get(f"{url}/metrics", auth=("llmwatch", PASSWORD), timeout=5).text
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("prometheus_remote_storage_") or s.name == APPENDED:
                key = (s.name, s.labels.get("remote_name", ""))
                found[key] = found.get(key, 0.0) + s.value
    return found


APPENDED = "prometheus_tsdb_head_samples_appended_total"


@pytest.mark.integration
def test_samples_reach_the_store_with_their_labels_and_a_wrong_password_lands_nothing(tmp_path, monkeypatch):
    from tests.test_series_budget import vllm_fleet

    prometheus = require_binary("prometheus")
    # The store: a second Prometheus whose remote-write receiver is behind basic auth (bcrypt).
    store_port = free_port()
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    (store_dir / "prometheus.yml").write_text("global: {}\n")
    store_env = render.load_env({"PROMETHEUS_PASSWORD": STORE_PASSWORD})
    (store_dir / "web.yml").write_text(render.prometheus_web_config(store_env, rounds=4))
    exposition = vllm_fleet(tmp_path)
    fleet_series = sum(len(f.samples) for f in text_string_to_metric_families(exposition))
    fleet = Exposition(exposition).start()
    processes = []
    try:
        processes.append(Process([prometheus, f"--config.file={store_dir / 'prometheus.yml'}",
                                  f"--storage.tsdb.path={store_dir / 'data'}", "--web.enable-remote-write-receiver",
                                  f"--web.listen-address=127.0.0.1:{store_port}",
                                  f"--web.config.file={store_dir / 'web.yml'}"], tmp_path / "store.log"))
        store = f"http://127.0.0.1:{store_port}"

        def sender(name: str, password: str) -> str:
            """A Prometheus with the remote_write stack-config renders, scraping itself and the fleet
            every second; its samples carry sender=<name>."""
            out = tmp_path / name
            assert stack_config(out, monkeypatch, {
                "REMOTE_WRITE_URL": f"{store}/api/v1/write", "REMOTE_WRITE_USER": "llmwatch",
                "REMOTE_WRITE_PASSWORD": password, "REMOTE_WRITE_HEADERS": "X-Scope-OrgID=llmwatch-test"}) == 0
            port = free_port()
            config = rendered(out)
            own = next(job for job in config["scrape_configs"] if job["job_name"] == "prometheus")
            own["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
            config["scrape_configs"] = [own, {"job_name": "fleet", "static_configs": [{"targets": [fleet.address]}]}]
            config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "external_labels": {"sender": name}}
            for key in ("alerting", "rule_files"):
                config.pop(key)
            stack = out / "out" / "prometheus"
            (stack / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
            process = Process([prometheus, f"--config.file={stack / 'prometheus.yml'}",
                               f"--storage.tsdb.path={out / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                               f"--web.config.file={stack / 'web.yml'}"], tmp_path / f"{name}.log")
            processes.append(process)
            return f"http://127.0.0.1:{port}"

        right, wrong = sender("right", STORE_PASSWORD), sender("wrong", "not-the-store-password")

        def store_query(expr: str) -> list[dict]:
            answer = httpx.get(f"{store}/api/v1/query", params={"query": expr}, auth=("llmwatch", STORE_PASSWORD),
                               timeout=5)
            answer.raise_for_status()
            return answer.json()["data"]["result"]

        # The sender's own `up` lands with the labels it had at the sender, plus its external label
        # (its first self-scrape may fail while it starts: the wait is for a successful one).
        landed = wait_until(lambda: [r for r in store_query('up{sender="right", job="prometheus"}')
                                     if r["value"][1] == "1"], 120, "up 1 in the store")
        assert landed[0]["metric"] == {"__name__": "up", "job": "prometheus", "instance": right.removeprefix("http://"),
                                       "sender": "right"}
        # and every series of the fleet's scrape
        def landed_from_fleet() -> int:
            found = store_query('count({sender="right", job="fleet", __name__!~"up|scrape_.*"})')
            return int(found[0]["value"][1]) if found else 0

        wait_until(lambda: landed_from_fleet() == fleet_series, 120, f"the fleet's {fleet_series} series in the store")
        sample = store_query('vllm:num_requests_running{sender="right"}')[0]["metric"]
        assert {"model_name", "container", "vllm_version"} <= set(sample), sample

        # The wrong password: the store answers 401, the batch is dropped and counted, nothing lands.
        wait_until(lambda: own_metrics(wrong).get(("prometheus_remote_storage_samples_failed_total", "long-term"), 0) > 0,
                   120, "failed samples at the sender with the wrong password")
        assert store_query('count({sender="wrong"})') == []
        assert own_metrics(right).get(("prometheus_remote_storage_samples_failed_total", "long-term")) == 0

        # What the right sender sends for this load (printed; the README quotes it): over the same
        # window, as many samples as its head appended (it keeps up), none refused or retried.
        counters = ("prometheus_remote_storage_samples_total", "prometheus_remote_storage_bytes_total")
        start, began = own_metrics(right), time.monotonic()
        wait_until(lambda: own_metrics(right)[(counters[0], "long-term")] - start[(counters[0], "long-term")]
                   >= 30 * fleet_series, 180, "30 scrapes' worth of samples sent")
        end, seconds = own_metrics(right), time.monotonic() - began
        sent = {name: end[(name, "long-term")] - start[(name, "long-term")] for name in counters}
        appended = end[(APPENDED, "")] - start[(APPENDED, "")]
        samples_per_s, bytes_per_s = sent[counters[0]] / seconds, sent[counters[1]] / seconds
        print(f"\nremote write ({binary('prometheus')}): {samples_per_s:.0f} samples/s, {bytes_per_s:.0f} bytes/s, "
              f"{sent[counters[1]] / sent[counters[0]]:.2f} bytes/sample; {appended / seconds:.0f} samples/s appended; "
              f"{fleet_series} fleet series scraped every second")
        assert abs(sent[counters[0]] - appended) <= 0.2 * appended, (sent, appended)
        assert end[("prometheus_remote_storage_samples_failed_total", "long-term")] == 0
        assert end.get(("prometheus_remote_storage_samples_retried_total", "long-term"), 0) == 0
    except AssertionError:
        for process in processes:
            print(process.log()[-3000:])
        raise
    finally:
        for process in processes:
            process.stop()
        fleet.close()
