"""The insights exporter's I/O source: instant queries against Prometheus' HTTP API.

All queries of a refresh go out concurrently under one deadline (llmwatch.core.fetch). Each
answer is a list of ``Sample(labels, value)``, or the reason it is missing.
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

    def __init__(self, url: str, user: str = "", password: str = "", timeout: float = 8.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        headers = {"Accept": "application/json"}
        if user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self._fetcher = Fetcher("insights", headers, MAX_BODY_BYTES)

    def query_all(self, queries: dict[str, str]) -> dict[str, list[Sample] | QueryFailed]:
        names = list(queries)
        urls = [f"{self.url}/api/v1/query?{urlencode({'query': queries[n]})}" for n in names]
        out: dict[str, list[Sample] | QueryFailed] = {}
        for name, reply in zip(names, self._fetcher.get_all(urls, self.timeout)):
            if reply.status in (401, 403):
                out[name] = QueryFailed("auth", f"HTTP {reply.status}: check insights.prometheus_user/password")
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

    def close(self) -> None:
        self._fetcher.close()
