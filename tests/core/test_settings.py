"""Settings: file defaults, environment overrides, validation messages, secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmwatch.core import settings as S
from llmwatch.exporters import known_sections
from llmwatch.exporters.gpu import GpuSettings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("LLMWATCH_"):
            monkeypatch.delenv(key)


def load_gpu(**kw):
    return S.load("gpu", GpuSettings, known_sections=known_sections(), **kw)


def problems(**kw) -> list[str]:
    with pytest.raises(S.SettingsError) as e:
        load_gpu(**kw)
    return e.value.problems


def test_committed_defaults_load_into_frozen_dataclasses():
    s = load_gpu()
    assert s.exporter.port == 9445 and s.common.scrape_budget_seconds == 8.0
    with pytest.raises(Exception):
        s.exporter.port = 1  # frozen


def test_environment_overrides_any_key_with_toml_typing(monkeypatch):
    monkeypatch.setenv("LLMWATCH_GPU__PORT", "9999")
    monkeypatch.setenv("LLMWATCH_GPU__XID_EVENTS", "false")
    monkeypatch.setenv("LLMWATCH_COMMON__SCRAPE_BUDGET_SECONDS", "3")  # an int where a float is wanted
    s = load_gpu()
    assert (s.exporter.port, s.exporter.xid_events, s.common.scrape_budget_seconds) == (9999, False, 3.0)
    assert isinstance(s.common.scrape_budget_seconds, float)


@pytest.mark.parametrize("env,value,expected", [
    ("LLMWATCH_GPU__PORT", "abc", "gpu.port (env LLMWATCH_GPU__PORT) must be an integer, got 'abc'"),
    ("LLMWATCH_GPU__PORT", "70000", "gpu.port (env LLMWATCH_GPU__PORT) must be <= 65535, got 70000"),
    ("LLMWATCH_GPU__PORT", "0", "gpu.port (env LLMWATCH_GPU__PORT) must be >= 1, got 0"),
    ("LLMWATCH_GPU__XID_EVENTS", "yes", "gpu.xid_events (env LLMWATCH_GPU__XID_EVENTS) must be true or false, got 'yes'"),
    ("LLMWATCH_COMMON__LOG_LEVEL", "LOUD", "common.log_level (env LLMWATCH_COMMON__LOG_LEVEL) must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"),
])
def test_bad_values_name_the_key_and_its_variable(monkeypatch, env, value, expected):
    monkeypatch.setenv(env, value)
    assert problems() == [expected]


def test_typos_are_reported_not_ignored(monkeypatch):
    monkeypatch.setenv("LLMWATCH_GPU_PORT", "1")  # single underscore: lands at top level
    monkeypatch.setenv("LLMWATCH_GPU__PROT", "1")
    found = problems()
    assert any("unknown setting 'gpu_port'" in p and "LLMWATCH_GPU__PORT" in p for p in found)
    assert any("unknown setting gpu.prot" in p for p in found)


def test_all_problems_are_reported_together(monkeypatch):
    monkeypatch.setenv("LLMWATCH_GPU__PORT", "abc")
    monkeypatch.setenv("LLMWATCH_DOCKER__TIMEOUT_SECONDS", "-1")
    assert len(problems()) == 2


def test_missing_settings_file_is_named(tmp_path):
    assert problems(config_dir=tmp_path) == [f"settings file not found: {tmp_path}/settings.toml (set LLMWATCH_CONFIG_DIR)"]


@dataclass(frozen=True)
class TokenSettings:
    port: int = S.setting(min=1, max=65535)
    api_key: str = S.setting(secret=True)


def write_config(tmp_path: Path, extra: str = "") -> Path:
    text = (REPO / "config" / "settings.toml").read_text() + f'\n[token]\nport = 9905\napi_key = ""\n{extra}'
    (tmp_path / "settings.toml").write_text(text)
    return tmp_path


def test_secrets_come_from_the_environment_keep_their_text_and_are_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMWATCH_TOKEN__API_KEY", "0123")  # TOML would read 123
    s = S.load("token", TokenSettings, known_sections=known_sections() | {"token"}, config_dir=write_config(tmp_path))
    assert s.exporter.api_key == "0123"
    assert "0123" in s.secrets
    shown = S.describe(s, "token")
    assert "0123" not in shown and 'api_key = "********"' in shown


def test_secrets_from_the_untracked_secrets_file(tmp_path):
    config = write_config(tmp_path)
    (config / ".secrets.toml").write_text('[token]\napi_key = "sk-from-file"\n')
    s = S.load("token", TokenSettings, known_sections=known_sections() | {"token"}, config_dir=config)
    assert s.exporter.api_key == "sk-from-file"


def load_token(config: Path):
    return S.load("token", TokenSettings, known_sections=known_sections() | {"token"}, config_dir=config)


def test_a_secret_comes_from_the_file_its_FILE_variable_names(tmp_path, monkeypatch):
    """Compose hands secrets over as files: the Docker API's inspect shows a container's
    environment, not the files it mounts."""
    secret = tmp_path / "api_key"
    secret.write_text("sk-from-a-file\n")
    monkeypatch.setenv("LLMWATCH_TOKEN__API_KEY_FILE", str(secret))
    s = load_token(write_config(tmp_path))
    assert s.exporter.api_key == "sk-from-a-file"  # without the final newline
    assert "sk-from-a-file" in s.secrets  # redacted from the logs like any secret


def test_a_secret_file_that_cannot_be_read_or_doubles_the_variable_is_named(tmp_path, monkeypatch):
    config = write_config(tmp_path)
    monkeypatch.setenv("LLMWATCH_TOKEN__API_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(S.SettingsError) as e:
        load_token(config)
    assert e.value.problems == [f"token.api_key (env LLMWATCH_TOKEN__API_KEY_FILE): cannot read {tmp_path / 'missing'}: "
                                "No such file or directory"]
    (tmp_path / "key").write_text("sk-1")
    monkeypatch.setenv("LLMWATCH_TOKEN__API_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("LLMWATCH_TOKEN__API_KEY", "sk-2")
    with pytest.raises(S.SettingsError) as e:
        load_token(config)
    assert e.value.problems == ["token.api_key: set LLMWATCH_TOKEN__API_KEY or LLMWATCH_TOKEN__API_KEY_FILE, not both"]


def test_only_secrets_take_a_FILE_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMWATCH_TOKEN__PORT_FILE", str(tmp_path / "port"))
    with pytest.raises(S.SettingsError) as e:
        load_token(write_config(tmp_path))
    assert any("unknown setting token.port_file" in p for p in e.value.problems)


def test_a_secret_in_the_committed_file_is_refused(tmp_path):
    config = write_config(tmp_path)
    text = (config / "settings.toml").read_text().replace('api_key = ""', 'api_key = "sk-committed"')
    (config / "settings.toml").write_text(text)
    with pytest.raises(S.SettingsError) as e:
        S.load("token", TokenSettings, known_sections=known_sections() | {"token"}, config_dir=config)
    assert e.value.problems == ["token.api_key is a secret: set it in the environment (LLMWATCH_TOKEN__API_KEY) "
                                "or config/.secrets.toml, not in settings.toml"]


def run_cli(*args, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LLMWATCH_")} | (env or {})
    return subprocess.run([sys.executable, "-m", "llmwatch", *args], capture_output=True, text=True,
                          env=full_env, cwd=REPO, timeout=60)


def test_check_config_prints_effective_settings_and_exits_zero():
    result = run_cli("gpu", "--check-config", env={"LLMWATCH_GPU__PORT": "9500"})
    assert result.returncode == 0, result.stderr
    assert "port = 9500  # LLMWATCH_GPU__PORT" in result.stdout
    assert "configuration ok" in result.stdout


def test_check_config_with_a_bad_value_is_one_line_naming_the_key():
    result = run_cli("gpu", "--check-config", env={"LLMWATCH_GPU__PORT": "abc"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "llmwatch gpu: gpu.port (env LLMWATCH_GPU__PORT) must be an integer, got 'abc'"]
