"""LiteLLM admin-API answers turned into plain values: no I/O, no metrics.

Every function takes the decoded JSON of one endpoint and raises :class:`BadPayload` when its
shape is not what any known LiteLLM version sends, so the collector can name the endpoint.
Shapes differ between versions: older proxies answer ``/user/list`` with a bare list and
``/health/readiness`` with ``status: "healthy"``; newer ones page users and put the database
check's own ``status`` ("connected", "disconnected", "unknown") in the readiness answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


class BadPayload(ValueError):
    """The answer parsed as JSON but is not shaped like LiteLLM's."""


OTHER = "other"


@dataclass(frozen=True)
class Readiness:
    db_connected: bool
    version: str
    cache: str
    callbacks: tuple[str, ...]


@dataclass(frozen=True)
class Deployment:
    model_group: str
    litellm_model_name: str
    model_id: str
    api_base: str
    api_provider: str
    mode: str
    input_cost_per_token: float | None
    output_cost_per_token: float | None


@dataclass(frozen=True)
class Spender:
    """A key, team or user: ``labels`` in LiteLLM's own label names, spend and budget in USD."""

    labels: tuple[str, ...]
    spend: float
    max_budget: float | None
    expires: float | None = None  # keys only, Unix seconds
    blocked: bool = False


def _object(payload: Any, what: str) -> dict:
    if not isinstance(payload, dict):
        raise BadPayload(f"{what}: expected a JSON object, got {type(payload).__name__}")
    return payload


def _text(value: Any) -> str:
    """LiteLLM writes unset label values as "None"; so do we, to keep PromQL joins working."""
    return "None" if value is None else str(value)


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadPayload(f"{what}: expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise BadPayload(f"{what}: expected a number, got {value!r}") from None
    return number if math.isfinite(number) else None


def timestamp(value: Any, what: str) -> float | None:
    """ISO 8601 (with or without a zone; LiteLLM stores UTC) to Unix seconds."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise BadPayload(f"{what}: expected an ISO 8601 time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadPayload(f"{what}: expected an ISO 8601 time, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def readiness(payload: Any) -> Readiness:
    body = _object(payload, "/health/readiness")
    callbacks = body.get("success_callbacks") or []
    if not isinstance(callbacks, list):
        raise BadPayload(f"/health/readiness: success_callbacks is not a list: {callbacks!r}")
    cache = body.get("cache")
    if isinstance(cache, dict):  # semantic cache: {"type": ..., "index_info": ...}
        cache = cache.get("type")
    # Newer proxies merge the DB check's {"status": "connected"|"disconnected"|"unknown"} in.
    db_connected = body.get("db") == "connected" and body.get("status") not in ("disconnected", "unknown")
    return Readiness(db_connected=db_connected, version=_text(body.get("litellm_version")),
                     cache="none" if cache is None else str(cache),
                     callbacks=tuple(sorted({str(c) for c in callbacks})))


def _provider(params: dict, info: dict) -> str:
    provider = info.get("litellm_provider") or params.get("custom_llm_provider")
    if provider:
        return str(provider)
    model = str(params.get("model") or "")
    return model.split("/", 1)[0] if "/" in model else "None"


def deployments(payload: Any) -> list[Deployment]:
    """``/model/info``: one entry per deployment (``model_info.id`` is LiteLLM's ``model_id`` label)."""
    data = _object(payload, "/model/info").get("data")
    if not isinstance(data, list):
        raise BadPayload("/model/info: no data list")
    out = []
    for i, entry in enumerate(data):
        entry = _object(entry, f"/model/info data[{i}]")
        params = entry.get("litellm_params") or {}
        info = entry.get("model_info") or {}
        if not isinstance(params, dict) or not isinstance(info, dict):
            raise BadPayload(f"/model/info data[{i}]: litellm_params and model_info must be objects")
        out.append(Deployment(
            model_group=_text(entry.get("model_name")), litellm_model_name=_text(params.get("model")),
            model_id=_text(info.get("id")), api_base=_text(params.get("api_base")),
            api_provider=_provider(params, info), mode=_text(info.get("mode")),
            input_cost_per_token=_number(info.get("input_cost_per_token"), f"/model/info data[{i}] input cost"),
            output_cost_per_token=_number(info.get("output_cost_per_token"), f"/model/info data[{i}] output cost")))
    return out


def deployment_health(payload: Any) -> list[tuple[str, str, bool]]:
    """``/health`` (background results): ``(litellm_model_name, api_base, healthy)`` per endpoint."""
    body = _object(payload, "/health")
    out = []
    for key, healthy in (("healthy_endpoints", True), ("unhealthy_endpoints", False)):
        entries = body.get(key) or []
        if not isinstance(entries, list):
            raise BadPayload(f"/health: {key} is not a list")
        for entry in entries:
            entry = _object(entry, f"/health {key}")
            out.append((_text(entry.get("model")), _text(entry.get("api_base")), healthy))
    return out


def page(payload: Any, path: str, rows_key: str) -> tuple[list[dict], int, int]:
    """One page of a list endpoint: ``(rows, total rows, total pages)``.

    Older proxies answer some lists with a bare JSON list (everything, one page).
    """
    if isinstance(payload, list):
        return payload, len(payload), 1
    body = _object(payload, path)
    rows = body.get(rows_key)
    if not isinstance(rows, list):
        raise BadPayload(f"{path}: no {rows_key} list")
    total = body.get("total_count", body.get("total", len(rows)))
    pages = body.get("total_pages", 1)
    if not isinstance(total, int) or not isinstance(pages, int):
        raise BadPayload(f"{path}: total and total_pages must be integers")
    return rows, total, max(pages, 1)


def spenders(rows: list[Any], kind: str) -> list[Spender]:
    """Keys, teams or users with their spend; labels as LiteLLM's own budget metrics name them."""
    out = []
    for i, row in enumerate(rows):
        row = _object(row, f"{kind}[{i}]")
        where = f"{kind}[{i}]"
        spend = _number(row.get("spend"), f"{where}.spend") or 0.0
        budget = _number(row.get("max_budget"), f"{where}.max_budget")
        if kind == "key":
            token = row.get("token")
            if not isinstance(token, str) or not token:
                raise BadPayload(f"{where}: no token (ask /key/list with return_full_object=true)")
            out.append(Spender((token, _text(row.get("key_alias"))), spend, budget,
                               expires=timestamp(row.get("expires"), f"{where}.expires"),
                               blocked=row.get("blocked") is True))
        elif kind == "team":
            out.append(Spender((_text(row.get("team_id")), _text(row.get("team_alias"))), spend, budget,
                               blocked=row.get("blocked") is True))
        else:
            out.append(Spender((_text(row.get("user_id")),), spend, budget))
    return out


def top_spenders(rows: list[Spender], limit: int) -> tuple[list[Spender], Spender | None]:
    """The ``limit`` biggest spenders, and one ``other`` row summing the rest (None when none are left)."""
    ranked = sorted(rows, key=lambda s: (-s.spend, s.labels))
    top, rest = ranked[:limit], ranked[limit:]
    if not rest:
        return top, None
    width = len(rows[0].labels)
    return top, Spender((OTHER,) * width, sum(s.spend for s in rest), None)


def rate_limit_errors(payload: Any, day: str) -> dict[str, int]:
    """``/global/activity/exceptions/deployment``: 429s per api_base on ``day`` ("Jan 22" style).

    LiteLLM labels days without the year, so only the requested single day is read.
    """
    if not isinstance(payload, list):
        raise BadPayload("/global/activity/exceptions/deployment: expected a list")
    out: dict[str, int] = {}
    for entry in payload:
        entry = _object(entry, "/global/activity/exceptions/deployment entry")
        api_base = _text(entry.get("api_base", entry.get("deployment")))
        days = entry.get("daily_data") or []
        if not isinstance(days, list):
            raise BadPayload("/global/activity/exceptions/deployment: daily_data is not a list")
        count = 0
        for d in days:
            d = _object(d, "daily_data entry")
            if d.get("date") == day:
                count += int(_number(d.get("num_rate_limit_exceptions"), "num_rate_limit_exceptions") or 0)
        out[api_base] = out.get(api_base, 0) + count
    return out


def global_spend(payload: Any) -> tuple[float, float | None]:
    body = _object(payload, "/global/spend")
    return (_number(body.get("spend"), "/global/spend spend") or 0.0,
            _number(body.get("max_budget"), "/global/spend max_budget"))
