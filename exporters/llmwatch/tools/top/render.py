"""A snapshot as rich tables (the live view and ``--once``) or as JSON (``--once --json``).

Missing values are "–" in text and ``null`` in JSON. A latency over its model's SLO, an error
ratio over the error SLO, a KV cache above the alert threshold and a GPU in trouble are shown
in red, so the eye finds them before reading numbers.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from llmwatch.mixin import MIXIN
from llmwatch.tools.top.snapshot import Alert, Gpu, Model, Snapshot

MISSING = "–"
PANES = ("all", "models", "gpus", "alerts")

# pane -> (sort name, key, descending); None values always sort last
SORTS = {
    "models": (("model", lambda m: m.model, False),
               ("requests/s", lambda m: m.requests_per_second, True),
               ("TTFT p95", lambda m: m.ttft_p95_seconds, True),
               ("errors", lambda m: m.error_ratio, True),
               ("waiting", lambda m: m.waiting_requests, True),
               ("$/h", lambda m: m.dollars_per_hour, True)),
    "gpus": (("gpu", None, False),
             ("util", lambda g: g.utilization_ratio, True),
             ("memory", lambda g: g.memory_used_bytes, True),
             ("temp", lambda g: g.temperature_celsius, True),
             ("power", lambda g: g.power_watts, True)),
    "alerts": (("severity", None, False),
               ("age", lambda a: a.age_seconds, False),
               ("name", lambda a: a.alertname, False)),
}


def number(value: float | None, unit: str = "") -> str:
    """Three significant digits, no exponent: 0.42, 12.3, 1234; a unit after a space."""
    if value is None:
        return MISSING
    text = f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{text} {unit}".rstrip() if unit else text


def seconds(value: float | None) -> str:
    if value is None:
        return MISSING
    return number(value * 1000, "ms") if value < 1 else number(value, "s")


def percent(value: float | None) -> str:
    return MISSING if value is None else number(value * 100, "%")


def dollars(value: float | None) -> str:
    return MISSING if value is None else f"${value:,.2f}"


def gibibytes(used: float | None, total: float | None) -> str:
    if used is None and total is None:
        return MISSING
    used_text = MISSING if used is None else f"{used / 2**30:.1f}"
    total_text = MISSING if total is None else f"{total / 2**30:.0f}"
    return f"{used_text}/{total_text} GiB"


def age(value: float | None) -> str:
    if value is None:
        return MISSING
    value = int(value)
    if value < 60:
        return f"{value}s"
    if value < 3600:
        return f"{value // 60}m{value % 60:02d}s"
    if value < 86400:
        return f"{value // 3600}h{value % 3600 // 60:02d}m"
    return f"{value // 86400}d{value % 86400 // 3600:02d}h"


def against(value: float | None, slo: float | None) -> Text:
    """"420 ms / 1 s", red when over the SLO."""
    text = seconds(value) if slo is None else f"{seconds(value)} / {seconds(slo)}"
    return Text(text, style="bold red" if value is not None and slo is not None and value > slo else "")


def replicas(m: Model) -> Text:
    if m.replicas_total is None:
        return Text(MISSING)
    text = f"{m.replicas_up}/{m.replicas_total}"
    extra = [f"{n} {what}" for n, what in ((m.replicas_starting, "starting"), (m.replicas_exited, "exited")) if n]
    if extra:
        text += f" ({', '.join(extra)})"
    return Text(text, style="bold red" if m.replicas_up < m.replicas_total else "")


def advice(m: Model) -> Text:
    if m.advice is None:
        return Text(MISSING)
    text = m.advice if not m.advice_reason else f"{m.advice} ({m.advice_reason})"
    return Text(text, style="yellow" if m.advice != "none" else "")


def trouble(g: Gpu) -> Text:
    parts = []
    if g.up is False:
        parts.append("lost")
    if g.xid_recent:
        parts.append("xid " + ",".join(g.xid_recent))
    if g.ecc_uncorrected:
        parts.append(f"ecc {g.ecc_uncorrected:.0f}")
    if parts:
        return Text(" ".join(parts), style="bold red")
    # "ok" only with the ECC counter read: without it nothing says the memory is fine
    return Text(MISSING if g.ecc_uncorrected is None else "ok")


@dataclass
class View:
    """What the keyboard changes: the pane shown, each pane's sort, the filter."""

    pane: str = "all"
    filter: str = ""
    sort: dict | None = None

    def __post_init__(self):
        self.sort = self.sort or {pane: 0 for pane in SORTS}

    def next_pane(self) -> None:
        self.pane = PANES[(PANES.index(self.pane) + 1) % len(PANES)]

    def sorted_pane(self) -> str:
        return "models" if self.pane == "all" else self.pane

    def next_sort(self) -> None:
        pane = self.sorted_pane()
        self.sort[pane] = (self.sort[pane] + 1) % len(SORTS[pane])

    def sort_name(self, pane: str) -> str:
        return SORTS[pane][self.sort[pane]][0]


def _sorted(items: list, pane: str, view: View) -> list:
    _, key, descending = SORTS[pane][view.sort[pane]]
    if key is None:
        return list(items)  # the snapshot's own order
    present = [i for i in items if key(i) is not None]
    absent = [i for i in items if key(i) is None]
    return sorted(present, key=key, reverse=descending) + absent


def _matches(needle: str, *haystack: str | None) -> bool:
    return not needle or any(needle.lower() in (h or "").lower() for h in haystack)


def models_table(snap: Snapshot, view: View) -> Table:
    table = Table(title=f"Models (sort: {view.sort_name('models')})", title_justify="left", expand=False, box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("model", "replicas", "req/s", "TTFT p95 / SLO", "TPOT p95 / SLO", "errors", "waiting",
                   "KV cache", "tok/s", "$/h", "$/1M tok", "advice"):
        table.add_column(column, justify="left" if column in ("model", "replicas", "advice") else "right",
                         no_wrap=True)
    kv_limit = MIXIN.kv_cache_usage.critical
    rows = [m for m in snap.models if _matches(view.filter, m.model, *m.containers)]
    for m in _sorted(rows, "models", view):
        over = m.error_ratio is not None and m.error_slo_ratio is not None and m.error_ratio > m.error_slo_ratio
        table.add_row(
            m.model, replicas(m), number(m.requests_per_second), against(m.ttft_p95_seconds, m.ttft_slo_seconds),
            against(m.tpot_p95_seconds, m.tpot_slo_seconds), Text(percent(m.error_ratio), "bold red" if over else ""),
            number(m.waiting_requests),
            Text(percent(m.kv_cache_usage_ratio), "bold red" if (m.kv_cache_usage_ratio or 0) > kv_limit else ""),
            number(m.tokens_per_second), dollars(m.dollars_per_hour), dollars(m.dollars_per_million_tokens),
            advice(m))
    return table


def gpus_table(snap: Snapshot, view: View) -> Table:
    table = Table(title=f"GPUs (sort: {view.sort_name('gpus')})", title_justify="left", expand=False, box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("gpu", "name", "util", "memory", "temp", "power", "trouble", "container"):
        table.add_column(column, justify="right" if column in ("util", "memory", "temp", "power") else "left",
                         no_wrap=True)
    rows = [g for g in snap.gpus if _matches(view.filter, g.gpu, g.name, *g.containers)]
    for g in _sorted(rows, "gpus", view):
        table.add_row(g.gpu, g.name or MISSING, percent(g.utilization_ratio),
                      gibibytes(g.memory_used_bytes, g.memory_total_bytes), number(g.temperature_celsius, "°C"),
                      number(g.power_watts, "W"), trouble(g), ", ".join(g.containers) or MISSING)
    return table


SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def alerts_table(snap: Snapshot, view: View) -> Table:
    table = Table(title=f"Firing alerts (sort: {view.sort_name('alerts')})", title_justify="left", expand=False, box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("severity", "age", "alert", "subject", "summary"):
        table.add_column(column, justify="right" if column == "age" else "left", no_wrap=column != "summary")
    rows: list[Alert] = [a for a in snap.alerts if _matches(view.filter, a.alertname, a.subject)]
    for a in _sorted(rows, "alerts", view):
        table.add_row(Text(a.severity, SEVERITY_STYLE.get(a.severity, "")), age(a.age_seconds), a.alertname,
                      a.subject or MISSING, a.summary)
    if not rows:
        table.add_row(MISSING, "", "none firing" if not snap.alerts else "none match the filter", "", "")
    return table


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def header(snap: Snapshot) -> Text:
    at = datetime.fromtimestamp(snap.time, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    line = Text(f"llmwatch top · {snap.prometheus} · {at} · heartbeat ")
    line.append(number(snap.heartbeat_bpm, "bpm"), style="bold")
    line.append(f" · {plural(len(snap.models), 'model')} · {plural(len(snap.gpus), 'GPU')} · ")
    line.append(f"{plural(len(snap.alerts), 'alert')} firing", style="bold red" if snap.alerts else "")
    return line


def snapshot_view(snap: Snapshot, view: View) -> RenderableType:
    parts: list[RenderableType] = [header(snap)]
    tables = {"models": models_table, "gpus": gpus_table, "alerts": alerts_table}
    for pane in ("models", "gpus", "alerts"):
        if view.pane in ("all", pane):
            parts += [Text(), tables[pane](snap, view)]
    for problem in snap.problems:
        parts.append(Text(f"query refused (its fields show –): {problem}", style="yellow"))
    return Group(*parts)


def as_json(snap: Snapshot) -> str:
    return json.dumps(asdict(snap), indent=2, sort_keys=False)


def status_line(message: str, retry_in: float, last_ok: float | None, clock=time.time) -> Text:
    """The one line shown instead of data while Prometheus does not answer."""
    text = Text(message, style="bold red")
    text.append(f" (retrying every {retry_in:g}s", style="")
    if last_ok is not None:
        text.append(f"; last answer {age(clock() - last_ok)} ago")
    text.append(")")
    return text
