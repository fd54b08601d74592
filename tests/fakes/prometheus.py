"""A stand-in for Prometheus' /api/v1/query: canned instant-query answers, as its HTTP API shapes them.

Answers are keyed by the exact PromQL text; a query not listed gets an empty vector (what
Prometheus answers when nothing matches). ``password`` set: requests without that basic-auth
password get 401. ``refuse`` lists queries answered 400 with Prometheus' error body.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

from llmwatch.simulation.server import FakeServer

Rows = list[tuple[dict[str, str], float]]


def vector(rows: Rows) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [1700000000.0, repr(float(value)) if value == value else "NaN"]}
        for labels, value in rows]}}


class FakePrometheus(FakeServer):
    def __init__(self, answers: dict[str, Rows], *, password: str = "", refuse: tuple[str, ...] = (), **kwargs):
        super().__init__(**kwargs)
        self.answers, self.password, self.refuse = answers, password, refuse
        self.queries: list[str] = []

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        parts = urlsplit(path)
        if parts.path != "/api/v1/query":
            return 404, "text/plain", b"404 page not found\n"
        if self.password:
            expected = "Basic " + base64.b64encode(f"llmwatch:{self.password}".encode()).decode()
            if headers.get("authorization") != expected:
                return 401, "text/plain", b"Unauthorized\n"
        query = parse_qs(parts.query).get("query", [""])[0]
        self.queries.append(query)
        if query in self.refuse:
            body = {"status": "error", "errorType": "bad_data", "error": "1:1: parse error: unexpected character"}
            return 400, "application/json", json.dumps(body).encode()
        return 200, "application/json", json.dumps(vector(self.answers.get(query, []))).encode()
