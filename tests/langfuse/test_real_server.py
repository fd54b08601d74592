"""The Langfuse exporter as a real process: v2's Postgres from the environment, linted by promtool."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from llmwatch.simulation.langfuse import FakeLangfuseServer
from tests.conftest import require_binary
from tests.langfuse.scenarios import dataset, v2_database
from tests.procs import REPO, exporter, free_port

pytestmark = pytest.mark.integration


def test_v2_exporter_process_reads_postgres_and_passes_promtool_lint(postgres, tmp_path):
    promtool = require_binary("promtool")
    dsn = v2_database("lf_process")
    with postgres_user(dsn, "reader", "s3cret-pw") as reader_dsn, FakeLangfuseServer("2.95.12") as server:
        port = free_port()
        env = {"LLMWATCH_LANGFUSE__URL": server.url, "LLMWATCH_LANGFUSE__DATABASE_URL": reader_dsn}
        with exporter("langfuse", port, tmp_path / "langfuse.log", env) as proc:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "llmwatch_langfuse_up 1.0" in text
    assert 'llmwatch_langfuse_info{source="postgres",version="2.95.12"} 1.0' in text
    assert "s3cret-pw" not in proc.log()
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


class postgres_user:
    """A read-only login role, as the README advises for the exporter."""

    def __init__(self, dsn: str, user: str, password: str):
        self.dsn, self.user, self.password = dsn, user, password

    def __enter__(self) -> str:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {self.user}")
            conn.execute(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'")
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {self.user}")
        host = self.dsn.split("@", 1)[1]
        return f"postgresql://{self.user}:{self.password}@{host}"

    def __exit__(self, *exc):
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {self.user}")
            conn.execute(f"DROP ROLE IF EXISTS {self.user}")


def test_v4_exporter_process_reads_the_api_with_keys_from_the_environment(tmp_path):
    with FakeLangfuseServer("4.16.0", dataset(), public_key="pk-lf-1", secret_key="sk-lf-2") as server:
        port = free_port()
        env = {"LLMWATCH_LANGFUSE__URL": server.url, "LLMWATCH_LANGFUSE__PUBLIC_KEY": "pk-lf-1",
               "LLMWATCH_LANGFUSE__SECRET_KEY": "sk-lf-2"}
        with exporter("langfuse", port, tmp_path / "langfuse.log", env) as proc:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "llmwatch_langfuse_up 1.0" in text
    assert 'llmwatch_langfuse_info{source="api",version="4.16.0"} 1.0' in text
    assert "sk-lf-2" not in proc.log()


def test_check_config_masks_the_secrets_and_rejects_a_bad_database_url():
    def check(extra):
        return subprocess.run([sys.executable, "-m", "llmwatch", "langfuse", "--check-config"], cwd=REPO,
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **extra})

    ok = check({"LLMWATCH_LANGFUSE__DATABASE_URL": "postgresql://reader:pw-4411@db/langfuse",
                "LLMWATCH_LANGFUSE__SECRET_KEY": "sk-lf-9"})
    assert ok.returncode == 0, ok.stderr
    assert "pw-4411" not in ok.stdout and "sk-lf-9" not in ok.stdout
    bad_url = check({"LLMWATCH_LANGFUSE__DATABASE_URL": "mysql://db/langfuse"})
    assert bad_url.returncode == 2
    assert "langfuse.database_url (env LLMWATCH_LANGFUSE__DATABASE_URL): must be a PostgreSQL URL" in bad_url.stderr
    bad_source = check({"LLMWATCH_LANGFUSE__SOURCE": "clickhouse"})
    assert bad_source.returncode == 2
    assert "langfuse.source (env LLMWATCH_LANGFUSE__SOURCE) must be one of auto, postgres, api" in bad_source.stderr
