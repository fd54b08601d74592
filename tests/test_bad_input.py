"""Bad input at every edge: a clear message naming what is wrong, exit status 2, never a traceback.

Each case runs the real command as a subprocess, as a user would, with only the environment
variables it sets (no LLMWATCH_* from the test run's own environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

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
