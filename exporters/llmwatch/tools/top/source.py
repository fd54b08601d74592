"""Where ``llmwatch top`` finds Prometheus, and one read of it.

The stack publishes Prometheus on ``LLMWATCH_PUBLISH_ADDRESS:PROMETHEUS_PORT`` behind basic auth
(user ``llmwatch``, ``PROMETHEUS_PASSWORD``), all in the ``.env`` that ./scripts/up writes, so on
the GPU host ``llmwatch top`` needs no arguments. A read that fails as a whole (no answer, a
refused password, something that is not Prometheus) becomes one line for the maintainer, never a
traceback: :class:`Unavailable`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from llmwatch.exporters.insights.prometheus import PrometheusSource, QueryFailed
from llmwatch.tools.top import snapshot

REPO_ENV = Path(__file__).resolve().parents[4] / ".env"
USER = "llmwatch"
DEFAULT_PORT = "23001"
# Addresses that publish on every interface: reached from this host through loopback.
ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}
AUTH_HINT = "check PROMETHEUS_PASSWORD in .env, or --user/--password-file"


class Unavailable(Exception):
    """Prometheus gave no usable answer; the message is the one line shown."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as docker compose reads .env (the last one wins; comments and blanks skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip().removeprefix("export ").strip()] = value
    return values


def default_env_file() -> Path | None:
    """``.env`` of the working directory, else of this checkout."""
    for path in (Path(".env"), REPO_ENV):
        if path.is_file():
            return path
    return None


def url_from_env(env: dict[str, str]) -> str:
    address = env.get("LLMWATCH_PUBLISH_ADDRESS", "").strip()
    host = "127.0.0.1" if address in ANY_ADDRESS else address
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{env.get('PROMETHEUS_PORT') or DEFAULT_PORT}"


@dataclass(frozen=True)
class Target:
    url: str
    user: str
    password: str


def resolve(url: str | None, user: str | None, password_file: Path | None, env_file: Path | None) -> Target:
    """Command line first, then the environment (PROMETHEUS_PASSWORD), then .env."""
    env = read_env_file(env_file) if env_file else {}
    password = os.environ.get("PROMETHEUS_PASSWORD") or env.get("PROMETHEUS_PASSWORD", "")
    if password_file is not None:
        password = password_file.read_text().strip()
    return Target(url=(url or url_from_env(env)).rstrip("/"), user=USER if user is None else user, password=password)


def _unavailable(url: str, failure: QueryFailed) -> Unavailable:
    if failure.reason == "auth":
        return Unavailable(f"Prometheus refused the password ({failure.detail.split(':')[0]}) at {url}: {AUTH_HINT}")
    if failure.reason in ("connect", "timeout"):
        return Unavailable(f"cannot reach Prometheus at {url}: {failure.detail}")
    if failure.reason == "invalid_answer":
        return Unavailable(f"{url} does not answer as Prometheus does: {failure.detail}")
    return Unavailable(f"Prometheus at {url} failed: {failure.detail}")


class Reader:
    """One Prometheus, read a snapshot at a time. ``clock`` gives the time of a snapshot (tests)."""

    def __init__(self, target: Target, timeout: float = 5.0, clock=time.time):
        self.url = target.url
        self.clock = clock
        self.source = PrometheusSource(target.url, target.user, target.password, timeout,
                                       name="top", auth_hint=AUTH_HINT)

    def read(self, at: float | None = None) -> snapshot.Snapshot:
        """A snapshot now (or evaluated at unix time ``at``); :class:`Unavailable` when Prometheus is not there.

        A query Prometheus refused on its own (``query_error``) only blanks its fields; any other
        failure means the answers cannot be trusted as a whole, so nothing is shown as data."""
        now = self.clock() if at is None else at
        # Prometheus' own now unless asked: a client clock ahead of the server's would query the future.
        answers = self.source.query_all(snapshot.queries(), at=at)
        for answer in answers.values():
            if isinstance(answer, QueryFailed) and answer.reason != "query_error":
                raise _unavailable(self.url, answer)
        alert_data = self.source.get_json("/api/v1/alerts")
        if isinstance(alert_data, QueryFailed):
            raise _unavailable(self.url, alert_data)
        return snapshot.build(answers, alert_data, now, self.url)

    def close(self) -> None:
        self.source.close()
