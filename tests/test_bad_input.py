"""Bad input at every edge: a clear message naming what is wrong, exit status 2, never a traceback.

Each case runs the real command as a subprocess, as a user would, with only the environment
variables it sets (no LLMWATCH_* from the test run's own environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from llmwatch.core.checks import check_url, url_problem

REPO = Path(__file__).resolve().parents[1]


def llmwatch(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("LLMWATCH_") and not k.endswith("_FOR_DYNACONF") and not k.startswith("DYNACONF_")}
    return subprocess.run([sys.executable, "-m", "llmwatch", *args], capture_output=True, text=True,
                          env=clean | (env or {}), cwd=cwd, timeout=120)


def refused(result: subprocess.CompletedProcess, *names: str) -> None:
    """Exit 2, each of ``names`` in stderr, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr)
    for name in names:
        assert name in result.stderr, result.stderr


# -- settings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("directive", ["@jinja {{ 7*7 }}", "@format {env[HOME]}", "@json [1]", "@int 5"])
def test_dynaconf_directives_in_environment_values_stay_literal(directive):
    """The log level's message quotes the value: an interpreted directive would show its result
    there (or, for @jinja, crash with an ImportError) instead of the text as typed."""
    result = llmwatch("litellm", "--check-config", env={"LLMWATCH_LITELLM__MASTER_KEY": directive,
                                                        "LLMWATCH_COMMON__LOG_LEVEL": directive})
    refused(result, "common.log_level (env LLMWATCH_COMMON__LOG_LEVEL)", repr(directive))


def test_a_directive_in_a_secret_is_kept_as_typed():
    code = ("from llmwatch.core import settings as S; from llmwatch.exporters import known_sections; "
            "from llmwatch.exporters.litellm import LitellmSettings; "
            "print(S.load('litellm', LitellmSettings, known_sections=known_sections()).exporter.master_key)")
    for value in ("@jinja {{ 7*7 }}", "@format {env[HOME]}"):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                                env={**os.environ, "LLMWATCH_LITELLM__MASTER_KEY": value}, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == value


@pytest.mark.parametrize("variable", ["AUTO_CAST_FOR_DYNACONF", "SETTINGS_FILE_FOR_DYNACONF", "DYNACONF_GPU__PORT",
                                      "SETTINGS_MODULE", "ENVVAR_PREFIX_FOR_DYNACONF", "LLMWATCH_INCLUDES_FOR_DYNACONF"])
def test_dynaconf_control_variables_are_refused(variable):
    refused(llmwatch("gpu", "--check-config", env={variable: "x"}), variable)


def test_a_project_root_in_the_shell_does_not_stop_the_exporter(tmp_path):
    """PROJECT_ROOT is dynaconf's old name for its root path, but also a common variable of its own;
    llmwatch passes its root path explicitly, so the variable changes nothing and is accepted."""
    result = llmwatch("gpu", "--check-config", env={"PROJECT_ROOT": str(tmp_path)})
    assert result.returncode == 0, result.stderr


def test_a_whole_section_in_one_variable_names_the_variable():
    refused(llmwatch("gpu", "--check-config", env={"LLMWATCH_GPU": "[1]"}), "LLMWATCH_GPU ", "LLMWATCH_GPU__<KEY>")


@pytest.mark.parametrize("address", ["not an address", "", "localhost", "127.0.0.1:9445"])
def test_listen_address_must_be_an_ip_address(address):
    refused(llmwatch("gpu", "--check-config", env={"LLMWATCH_COMMON__LISTEN_ADDRESS": address}),
            "LLMWATCH_COMMON__LISTEN_ADDRESS", "must be an IP address")


@pytest.mark.parametrize("url, problem", [("http://", "is not an http(s) base URL"),
                                          ("http://litellm:0", "port 0"),
                                          ("http://[::1", "is not a valid URL")])
def test_bad_urls_are_refused_by_check_config(url, problem):
    refused(llmwatch("litellm", "--check-config", env={"LLMWATCH_LITELLM__URL": url}), "LLMWATCH_LITELLM__URL", problem)


def test_good_listen_addresses_pass():
    for address in ("0.0.0.0", "::", "127.0.0.1"):
        result = llmwatch("gpu", "--check-config", env={"LLMWATCH_COMMON__LISTEN_ADDRESS": address})
        assert result.returncode == 0, result.stderr


@given(st.one_of(st.text(), st.text().map(lambda t: "http://" + t), st.text().map(lambda t: "https://[" + t),
                 st.text(alphabet="htps:/[]@%:0123456789.a\uff0f\u2100\ufe6b#?").map(lambda t: "http://" + t)))
def test_the_url_check_answers_with_a_message_never_another_exception(text):
    problem = url_problem(text)
    assert problem is None or isinstance(problem, str)
    try:
        check_url(text, "litellm.url")
    except ValueError as e:
        assert str(e).startswith("litellm.url: ")


@settings(max_examples=40, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
       .map(lambda t: "http://" + t))
def test_a_url_setting_gives_a_settings_error_or_a_value_never_another_exception(text):
    from llmwatch.core import settings as S
    from llmwatch.exporters import known_sections
    from llmwatch.exporters.litellm import LitellmSettings

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LLMWATCH_")}
    os.environ["LLMWATCH_LITELLM__URL"] = text
    try:
        S.load("litellm", LitellmSettings, known_sections=known_sections())
    except S.SettingsError as e:
        assert any("LLMWATCH_LITELLM__URL" in p for p in e.problems), e.problems
    finally:
        del os.environ["LLMWATCH_LITELLM__URL"]
        os.environ.update(saved)


# -- simulate and loadgen ---------------------------------------------------------------------

EXAMPLE = REPO / "config" / "simulator" / "example.yaml"


def simulator_config(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / "sim.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_simulate_refuses_a_run_too_large_to_hold_in_memory(tmp_path):
    config = simulator_config(tmp_path, "sim_seconds: 600.0", "sim_seconds: 1.0e+8")
    refused(llmwatch("simulate", "run", "--config", str(config), "--json"),
            "sim_seconds", "2,000,000", "lower arrival.rate_per_s or sim_seconds")


def test_simulate_refuses_a_sweep_rate_too_large(tmp_path):
    refused(llmwatch("simulate", "sweep", "--config", str(EXAMPLE), "--rates", "1e9", "--json"),
            "arrival.rate_per_s", "2,000,000")


@pytest.mark.parametrize("requests", ["0", "-5", "3000000"])
def test_simulate_refuses_a_request_count_out_of_range(requests):
    refused(llmwatch("simulate", "capacity", "--config", str(EXAMPLE), "--requests", requests), "--requests")


def test_simulate_names_the_file_and_line_of_a_yaml_error(tmp_path):
    config = simulator_config(tmp_path, "arrival:\n  rate_per_s: 2.0", "arrival:\n  rate_per_s: [2.0")
    result = llmwatch("simulate", "run", "--config", str(config))
    refused(result, f"{config}, line ", "not valid YAML")
    line = int(result.stderr.split(", line ")[1].split(",")[0])
    assert "rate_per_s" in "\n".join(config.read_text().splitlines()[line - 3:line])  # near the bracket


def test_loadgen_refuses_a_rate_too_large_to_plan():
    refused(llmwatch("loadgen", "--url", "http://127.0.0.1:9", "--model", "m", "--rate", "1e9"),
            "--rate", "--duration", "2,000,000")


@pytest.mark.parametrize("out", ["/proc/x", "FILE/x"])
def test_loadgen_refuses_an_unwritable_out_before_sending_anything(tmp_path, out):
    (tmp_path / "FILE").write_text("a file, not a folder")
    out = out.replace("FILE", str(tmp_path / "FILE"))
    refused(llmwatch("loadgen", "--url", "http://127.0.0.1:9", "--model", "m", "--duration", "1", "--out", out),
            f"--out {out}")


@pytest.mark.parametrize("flag, value", [("--prompt-tokens", "-5"), ("--output-tokens", "-1"),
                                         ("--prompt-tokens", "mean=-5,std=1")])
def test_loadgen_refuses_negative_token_counts(flag, value):
    refused(llmwatch("loadgen", "--url", "http://127.0.0.1:9", "--model", "m", flag, value), flag, "must be")


def test_loadgen_refuses_duplicate_endpoint_names():
    result = llmwatch("loadgen", "--url", "a=http://127.0.0.1:9", "--url", "a=http://127.0.0.1:10", "--model", "m")
    refused(result, "endpoint name 'a' is given more than once")
    unnamed = llmwatch("loadgen", "--url", "http://127.0.0.1:9", "--url", "http://127.0.0.1:9/", "--model", "m")
    refused(unnamed, "endpoint name '127.0.0.1:9'")


def test_loadgen_names_the_file_and_line_of_a_yaml_error(tmp_path):
    config = tmp_path / "load.yaml"
    config.write_text("sim_seconds: 60\narrival:\n\trate_per_s: 1\n")  # a tab
    refused(llmwatch("loadgen", "--url", "http://127.0.0.1:9", "--model", "m", "--config", str(config)),
            f"{config}, line 3")


# -- stack-config -----------------------------------------------------------------------------

STACK_ENV = {"PROMETHEUS_PASSWORD": "a-long-password-123", "COMPOSE_PROFILES": "gpu,vllm"}


def stack_config(*args: str, **env: str) -> subprocess.CompletedProcess:
    return llmwatch("stack-config", *args, env=STACK_ENV | env)


@pytest.mark.parametrize("out", ["/proc/x", "FILE/x"])
def test_stack_config_names_an_unwritable_out(tmp_path, out):
    (tmp_path / "FILE").write_text("a file, not a folder")
    out = out.replace("FILE", str(tmp_path / "FILE"))
    refused(stack_config("--out", out), "cannot write", out)


@pytest.mark.parametrize("name, value, problem", [
    ("LITELLM_MASTER_KEY", "sk-one\nsk-two", "newline or another control character"),
    ("LITELLM_MASTER_KEY", "sk-one\x1b[2J", "control character"),
    ("LITELLM_MASTER_KEY", "sk one", "contains a space"),
    ("ALERT_PAGERDUTY_ROUTING_KEY", "abc def", "contains a space"),
    ("ALERT_SMTP_PASSWORD", "pass\rword", "control character"),
    ("ALERT_EMAIL_TO", "ops@example.com{{ .CommonLabels }}", "template syntax"),
    ("ALERT_SMTP_FROM", "${HOME}@example.com", "template syntax"),
    ("ALERT_SLACK_CHANNEL", "#alerts{{ template \"x\" }}", "template syntax"),
])
def test_stack_config_refuses_secrets_and_template_fields_that_would_not_be_sent_as_written(name, value, problem):
    result = stack_config("--out", "/nonexistent", "--check", **{name: value})
    refused(result, name, problem)
    assert value not in result.stderr  # never echo a secret


def test_stack_config_names_the_file_and_line_of_a_yaml_error(tmp_path):
    (tmp_path / "alertmanager.yml").write_text("route:\n  receiver: critical\nreceivers:\n  - name: [critical\n")
    refused(stack_config("--out", str(tmp_path / "out"), "--alertmanager-dir", str(tmp_path)),
            f"{tmp_path / 'alertmanager.yml'}, line ")


def test_stack_config_refuses_an_alertmanager_yml_of_the_wrong_shape(tmp_path):
    (tmp_path / "alertmanager.yml").write_text("- just\n- a list\n")
    refused(stack_config("--out", str(tmp_path / "out"), "--alertmanager-dir", str(tmp_path)), "alertmanager.yml")
