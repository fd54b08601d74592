"""A real Prometheus scrapes the Langfuse exporter while it is restarted mid-stream: increase() over the
restart equals the rows Langfuse received, the downtime included, with no counter reset."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import yaml

from llmwatch.simulation.langfuse import Dataset, FakeLangfuseServer, Observation
from tests.conftest import require_binary
from tests.procs import Process, exporter, free_port, wait_until

pytestmark = pytest.mark.integration
COUNTER = "llmwatch_langfuse_observations_total"


class Prometheus:
    """Prometheus scraping one target every second (as tests/stack/stack.py shortens the intervals)."""

    def __init__(self, tmp_path, target: str):
        binary = require_binary("prometheus")
        self.port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "llmwatch-langfuse", "static_configs": [{"targets": [target]}]}]}))
        self.process = Process([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                                f"--web.listen-address=127.0.0.1:{self.port}"], tmp_path / "prometheus.log")
        wait_until(lambda: httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200, 60, "Prometheus ready")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        body = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def scalar(self, expr: str, at: float | None = None) -> float | None:
        result = self.query(expr, at)
        return float(result[0]["value"][1]) if result else None

    def close(self):
        self.process.stop()


def arrive(data: Dataset, n: int, prefix: str) -> int:
    """``n`` generations starting now (naive UTC, milliseconds, as Langfuse keeps them); their input tokens."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    rows = [Observation(f"{prefix}{i}", f"t-{prefix}{i}", "p-chat", "GENERATION", "DEFAULT", "completion",
                        "Qwen/Qwen3-32B", now - timedelta(milliseconds=i), None, None, 100 + i, 10, None, 0.001,
                        "production") for i in range(n)]
    data.observations.extend(rows)
    return sum(r.prompt_tokens for r in rows)


def test_increase_over_an_exporter_restart_equals_the_rows_langfuse_received(tmp_path):
    data = Dataset(projects={"p-chat": "chat-app"})
    arrive(data, 3, "seed-")  # before the exporter starts: counting starts after them
    port = free_port()
    with FakeLangfuseServer("4.16.0", data) as langfuse:
        env = {"LLMWATCH_LANGFUSE__URL": langfuse.url, "LLMWATCH_LANGFUSE__PUBLIC_KEY": "pk-lf-test",
               "LLMWATCH_LANGFUSE__SECRET_KEY": "sk-lf-test", "LLMWATCH_LANGFUSE__CACHE_SECONDS": "1",
               "LLMWATCH_LANGFUSE__SETTLE_SECONDS": "300",
               "LLMWATCH_LANGFUSE__STATE_FILE": str(tmp_path / "state" / "langfuse.json")}
        prometheus = Prometheus(tmp_path, f"127.0.0.1:{port}")
        try:
            total = f"sum({COUNTER})"
            with exporter("langfuse", port, tmp_path / "first.log", env):
                wait_until(lambda: prometheus.scalar(total) == 0, 30, "the counter at 0 in Prometheus")
                tokens = arrive(data, 40, "before-")
                wait_until(lambda: prometheus.scalar(total) == 40, 30, "40 rows counted")
            wait_until(lambda: prometheus.scalar('up{job="llmwatch-langfuse"}') == 0, 30, "the exporter seen down")
            tokens += arrive(data, 25, "during-")  # while the exporter is down
            with exporter("langfuse", port, tmp_path / "second.log", env):
                tokens += arrive(data, 35, "after-")
                wait_until(lambda: prometheus.scalar(total) == 100, 30, "all 100 rows counted")
                last = prometheus.scalar(f"max(timestamp({COUNTER}))")
                series = prometheus.query(f"{COUNTER}[10m]", at=last)
                first = min(float(s["values"][0][0]) for s in series)
                span = f"{math.ceil((last - first) * 1000) + 1}ms"  # from just before the first sample to the last
                increase = prometheus.scalar(f"sum(increase({COUNTER}[{span}]))", at=last)
                token_increase = prometheus.scalar(
                    f'sum(increase(llmwatch_langfuse_tokens_total{{direction="input"}}[{span}]))', at=last)
                resets = prometheus.scalar(f"sum(resets({COUNTER}[{span}]))", at=last)
        finally:
            prometheus.close()
    assert resets == 0
    assert increase == pytest.approx(100, abs=1e-6)  # 40 before, 25 while down, 35 after: none twice, none lost
    assert token_increase == pytest.approx(tokens, abs=1e-6)
