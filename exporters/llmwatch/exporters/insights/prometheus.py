"""The insights exporter's I/O source: instant queries against Prometheus' HTTP API.

All queries of a refresh go out concurrently under one deadline (llmwatch.core.fetch). Each
answer is a list of ``Sample(labels, value)``, or the reason it is missing. ``llmwatch top``
reads Prometheus through the same class (with its own hint for a refused password, and its
firing alerts through :meth:`PrometheusSource.get_json`).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from urllib.parse import urlencode

from llmwatch.core.fetch import ERRORS as FETCH_ERRORS, Fetcher

# auth: 401/403; query_error: Prometheus refused the query; invalid_answer: not its JSON shape.
ERRORS = (*FETCH_ERRORS, "auth", "query_error", "invalid_answer")
# The largest query answer read (reason too_large beyond, the read stopped there): the queries
# aggregate to a few series per model or GPU, so a real answer is a few kilobytes.
MAX_BODY_BYTES = 4 << 20


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class QueryFailed(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


def parse_vector(body: bytes) -> list[Sample]:
    """An /api/v1/query answer -> samples; NaN and infinite values are dropped (no data, not zero)."""
    try:
        answer = json.loads(body)
    except ValueError as e:
        raise QueryFailed("invalid_answer", f"not JSON: {e}") from None
    if not isinstance(answer, dict):
        raise QueryFailed("invalid_answer", "not a JSON object")
    if answer.get("status") != "success":
        raise QueryFailed("query_error", f"{answer.get('errorType', '?')}: {answer.get('error', '?')}")
    data = answer.get("data")
    if not isinstance(data, dict) or data.get("resultType") not in ("vector", "scalar"):
        raise QueryFailed("invalid_answer", f"expected a vector result, got {str(data)[:80]}")
    result = data.get("result")
    if data["resultType"] == "scalar":
        result = [{"metric": {}, "value": result}]
    if not isinstance(result, list):
        raise QueryFailed("invalid_answer", "result is not a list")
    samples = []
    for item in result:
        try:
            labels, (_, text) = item["metric"], item["value"]
            value = float(text)
        except (KeyError, TypeError, ValueError) as e:
            raise QueryFailed("invalid_answer", f"bad sample {str(item)[:80]}: {e}") from None
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise QueryFailed("invalid_answer", f"bad labels {str(labels)[:80]}")
        if math.isfinite(value):
            samples.append(Sample(labels, value))
    return samples


class PrometheusSource:
    """``query_all({name: promql})`` -> ``{name: [Sample] | QueryFailed}``."""

    def __init__(self, url: str, user: str = "", password: str = "", timeout: float = 8.0, *,
                 name: str = "insights", auth_hint: str = "check insights.prometheus_user/password"):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.auth_hint = auth_hint
        headers = {"Accept": "application/json"}
        if user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self._fetcher = Fetcher(name, headers, MAX_BODY_BYTES)

    def query_all(self, queries: dict[str, str], at: float | None = None) -> dict[str, list[Sample] | QueryFailed]:
        """``at``: evaluate at this unix time instead of Prometheus' now (two readers comparing answers)."""
        names = list(queries)
        params = {} if at is None else {"time": f"{at:.3f}"}
        urls = [f"{self.url}/api/v1/query?{urlencode({'query': queries[n], **params})}" for n in names]
        out: dict[str, list[Sample] | QueryFailed] = {}
        for name, reply in zip(names, self._fetcher.get_all(urls, self.timeout)):
            if reply.status in (401, 403):
                out[name] = QueryFailed("auth", f"HTTP {reply.status}: {self.auth_hint}")
            elif reply.status in (400, 422):  # Prometheus explains a bad query in a JSON body
                try:
                    parse_vector(reply.body)
                    out[name] = QueryFailed("query_error", f"HTTP {reply.status}")
                except QueryFailed as e:
                    out[name] = e
            elif not reply.ok:
                out[name] = QueryFailed(reply.error or "http", reply.detail)
            else:
                try:
                    out[name] = parse_vector(reply.body)
                except QueryFailed as e:
                    out[name] = e
        return out

    def get_json(self, path: str) -> object | QueryFailed:
        """The ``data`` of another API answer (``/api/v1/alerts``), or why there is none."""
        reply = self._fetcher.get_all([f"{self.url}{path}"], self.timeout)[0]
        if reply.status in (401, 403):
            return QueryFailed("auth", f"HTTP {reply.status}: {self.auth_hint}")
        if not reply.ok and reply.status not in (400, 422):
            return QueryFailed(reply.error or "http", reply.detail)
        try:
            answer = json.loads(reply.body)
        except ValueError as e:
            return QueryFailed("invalid_answer", f"not JSON: {e}")
        if not isinstance(answer, dict) or answer.get("status") != "success":
            what = answer if not isinstance(answer, dict) else f"{answer.get('errorType', '?')}: {answer.get('error', '?')}"
            return QueryFailed("query_error" if isinstance(answer, dict) else "invalid_answer", str(what)[:120])
        return answer.get("data")

    def close(self) -> None:
        self._fetcher.close()
