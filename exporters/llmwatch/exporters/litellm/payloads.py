"""LiteLLM admin-API answers turned into plain values: no I/O, no metrics.

Every function takes the decoded JSON of one endpoint and raises :class:`BadPayload` when its
shape is not what any known LiteLLM version sends, so the collector can name the endpoint.
Shapes differ between versions: up to 1.83 the public ``/health/readiness`` carries the version,
success callbacks and cache; from 1.84 it answers only ``status`` and ``db`` and the rest moved to
the keyed ``/health/readiness/details``. From 1.84 a proxy whose database is down answers
readiness with HTTP 503 and ``{"status": "healthy", "db": "disconnected"}``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


class BadPayload(ValueError):
    """The answer parsed as JSON but is not shaped like LiteLLM's."""


OTHER = "other"


# /health/readiness "db": "connected"; "disconnected", "stalled" or "unknown" when a configured database
# does not answer (in time); "Not connected" when the proxy has no database (DATABASE_URL unset).
NO_DATABASE = "Not connected"
# The user row LiteLLM keeps the proxy-wide budget in (user_id, as LITELLM_PROXY_BUDGET_NAME names it).
PROXY_BUDGET_ROW = "litellm-proxy-budget"


@dataclass(frozen=True)
class Readiness:
    """A readiness answer; ``details`` is False for the public one of LiteLLM >= 1.84 (no version,
    callbacks or cache in it: those are in /health/readiness/details)."""

    db: str  # LiteLLM's own word, NO_DATABASE without one
    details: bool
    version: str
    cache: str
    callbacks: tuple[str, ...]
    shutting_down: bool = False

    @property
    def has_database(self) -> bool:
        return self.db != NO_DATABASE

    @property
    def db_connected(self) -> bool:
        return self.db == "connected"


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
    # Every price /model/info carries for the deployment, by LiteLLM's own field name
    # (input_cost_per_second, cache_read_input_token_cost, output_cost_per_image...).
    prices: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class BudgetWindow:
    """One of ``budget_limits``: a budget of its own over ``duration`` ("1d", "7d"...), reset at ``reset_at``."""

    duration: str
    max_budget: float
    reset_at: float | None


@dataclass(frozen=True)
class Spender:
    """A key, team or user: ``labels`` in LiteLLM's own label names, spend and budget in USD."""

    labels: tuple[str, ...]
    spend: float
    max_budget: float | None  # 0 is a real budget: LiteLLM then refuses every request (spend >= 0)
    expires: float | None = None  # keys only, Unix seconds
    blocked: bool = False
    budget_reset_at: float | None = None  # when spend goes back to 0 (every budget_duration), Unix seconds
    soft_budget: float | None = None  # teams: LiteLLM alerts past it, does not refuse
    windows: tuple[BudgetWindow, ...] = ()  # keys and teams: budget_limits


@dataclass(frozen=True)
class ProxyBudget:
    """The proxy-wide budget: LiteLLM compares the spend of its budget row with ``max_budget``."""

    spend: float
    max_budget: float | None
    duration: str | None
    reset_at: float | None


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


def readiness(payload: Any, what: str = "/health/readiness") -> Readiness:
    """``/health/readiness`` (any version, 200 or 503) or ``/health/readiness/details``."""
    body = _object(payload, what)
    if body.get("status") == "shutting_down":  # graceful shutdown: 503 {"status": "shutting_down"}
        return Readiness(db="unknown", details=False, version="None", cache="none", callbacks=(),
                         shutting_down=True)
    db = body.get("db")
    if not isinstance(db, str):
        raise BadPayload(f"{what}: no db status")
    callbacks = body.get("success_callbacks") or []
    if not isinstance(callbacks, list):
        raise BadPayload(f"{what}: success_callbacks is not a list: {callbacks!r}")
    cache = body.get("cache")
    if isinstance(cache, dict):  # semantic cache: {"type": ..., "index_info": ...}
        cache = cache.get("type")
    return Readiness(db=db, details="litellm_version" in body, version=_text(body.get("litellm_version")),
                     cache="none" if cache is None else str(cache),
                     callbacks=tuple(sorted({str(c) for c in callbacks})))


def _provider(params: dict, info: dict) -> str:
    provider = info.get("litellm_provider") or params.get("custom_llm_provider")
    if provider:
        return str(provider)
    model = str(params.get("model") or "")
    return model.split("/", 1)[0] if "/" in model else "None"


def is_price(field_name: str) -> bool:
    """A /model/info field holding a price: ``input_cost_per_token``, ``output_cost_per_second``,
    ``cache_read_input_token_cost``, ``input_cost_per_image``... (LiteLLM adds new ones often)."""
    return "cost_per_" in field_name or field_name.endswith("_cost")


def deployments(payload: Any) -> list[Deployment]:
    """``/model/info``: one entry per deployment (``model_info.id`` is LiteLLM's ``model_id`` label).

    Prices are what LiteLLM charges with: the deployment's own (its ``litellm_params``) over the model
    cost map's (``model_info``; from 1.84 it shows the deployment's own too, 1.83 shows only its
    per-token ones there). Null or absent means no such price; tiers and other non-numbers are left
    out.
    """
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
        prices: dict[str, float] = {}
        for name, raw in [*info.items(), *params.items()]:  # the deployment's own last: they win
            if is_price(str(name)) and isinstance(raw, (int, float)) and not isinstance(raw, bool):
                if (price := _number(raw, f"/model/info data[{i}] {name}")) is not None:
                    prices[str(name)] = price
        out.append(Deployment(
            model_group=_text(entry.get("model_name")), litellm_model_name=_text(params.get("model")),
            model_id=_text(info.get("id")), api_base=_text(params.get("api_base")),
            api_provider=_provider(params, info), mode=_text(info.get("mode")),
            input_cost_per_token=_number(info.get("input_cost_per_token"), f"/model/info data[{i}] input cost"),
            output_cost_per_token=_number(info.get("output_cost_per_token"), f"/model/info data[{i}] output cost"),
            prices=tuple(sorted(prices.items()))))
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


def budget_windows(value: Any, what: str) -> tuple[BudgetWindow, ...]:
    """``budget_limits`` of a key or team: ``[{budget_duration, max_budget, reset_at}]`` (JSON text in
    some answers). A window's own spend is not in the lists (only /key/info reads it)."""
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadPayload(f"{what}: not JSON") from None
    if not isinstance(value, list):
        raise BadPayload(f"{what}: expected a list of budget windows")
    out = []
    for j, window in enumerate(value):
        window = _object(window, f"{what}[{j}]")
        duration, budget = window.get("budget_duration"), _number(window.get("max_budget"), f"{what}[{j}].max_budget")
        if not isinstance(duration, str) or not duration or budget is None:
            raise BadPayload(f"{what}[{j}]: needs budget_duration and max_budget")
        out.append(BudgetWindow(duration, budget, timestamp(window.get("reset_at"), f"{what}[{j}].reset_at")))
    return tuple(out)


def spenders(rows: list[Any], kind: str) -> list[Spender]:
    """Keys, teams or users with their spend; labels as LiteLLM's own budget metrics name them.

    The proxy-wide budget row (``litellm-proxy-budget``) is not a user: see :func:`proxy_budget`.
    """
    out = []
    for i, row in enumerate(rows):
        row = _object(row, f"{kind}[{i}]")
        where = f"{kind}[{i}]"
        spend = _number(row.get("spend"), f"{where}.spend") or 0.0
        budget = _number(row.get("max_budget"), f"{where}.max_budget")
        common = {"budget_reset_at": timestamp(row.get("budget_reset_at"), f"{where}.budget_reset_at")}
        if kind == "key":
            token = row.get("token")
            if not isinstance(token, str) or not token:
                raise BadPayload(f"{where}: no token (ask /key/list with return_full_object=true)")
            out.append(Spender((token, _text(row.get("key_alias"))), spend, budget,
                               expires=timestamp(row.get("expires"), f"{where}.expires"),
                               blocked=row.get("blocked") is True,
                               windows=budget_windows(row.get("budget_limits"), f"{where}.budget_limits"), **common))
        elif kind == "team":
            out.append(Spender((_text(row.get("team_id")), _text(row.get("team_alias"))), spend, budget,
                               blocked=row.get("blocked") is True,
                               soft_budget=_number(row.get("soft_budget"), f"{where}.soft_budget"),
                               windows=budget_windows(row.get("budget_limits"), f"{where}.budget_limits"), **common))
        elif row.get("user_id") != PROXY_BUDGET_ROW:
            out.append(Spender((_text(row.get("user_id")),), spend, budget, **common))
    return out


def proxy_budget(rows: list[Any]) -> ProxyBudget | None:
    """The ``litellm-proxy-budget`` user row, which LiteLLM keeps when a proxy-wide ``max_budget`` is set:
    spend since its last reset (every ``budget_duration``), what LiteLLM compares with the budget."""
    for i, row in enumerate(rows):
        if isinstance(row, dict) and row.get("user_id") == PROXY_BUDGET_ROW:
            where = f"user[{i}] ({PROXY_BUDGET_ROW})"
            budget = _number(row.get("max_budget"), f"{where}.max_budget")
            duration = row.get("budget_duration")
            return ProxyBudget(_number(row.get("spend"), f"{where}.spend") or 0.0,
                               budget if budget else None, duration if isinstance(duration, str) else None,
                               timestamp(row.get("budget_reset_at"), f"{where}.budget_reset_at"))
    return None


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
    """``/global/spend``: the spend logs of the last 30 days (LiteLLM's MonthlyGlobalSpend view) and the
    proxy-wide ``max_budget`` (LiteLLM's default 0.0 means none: None)."""
    body = _object(payload, "/global/spend")
    budget = _number(body.get("max_budget"), "/global/spend max_budget")
    return (_number(body.get("spend"), "/global/spend spend") or 0.0, budget if budget and budget > 0 else None)
