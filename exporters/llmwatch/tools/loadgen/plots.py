"""The load test's PNG: TTFT distribution per endpoint, and their percentiles side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmwatch.tools.loadgen.run import Record
from llmwatch.tools.simulate.plots import pyplot


def ttft_curve(rows: list[Record]) -> tuple[np.ndarray, np.ndarray, float]:
    """TTFT of the successful requests, sorted, against the share of *all* requests answered that
    fast, and the share that failed: the curve ends at the success share, so a run where half the
    requests failed cannot look like one where every request was answered."""
    ttft = np.sort([r.outcome.ttft for r in rows if r.outcome.ok])
    total = len(rows)
    if not total:
        return ttft, ttft, 0.0
    return ttft, np.arange(1, len(ttft) + 1) / total, 1 - len(ttft) / total


def latency_plot(records: dict[str, list[Record]], results: dict[str, dict], out: Path) -> None:
    plt = pyplot()
    fig, (cdf, bars) = plt.subplots(1, 2, figsize=(13, 5))
    for name, rows in records.items():
        ttft, share, failed = ttft_curve(rows)
        label = f"{name} ({failed:.0%} failed)" if failed else name
        if len(ttft):
            (line,) = cdf.plot(ttft, share, label=label)
            if failed:  # where the curve stops: the rest of the requests never got a first token
                cdf.axhline(share[-1], color=line.get_color(), linestyle=":", alpha=0.6)
        elif failed:
            cdf.plot([], [], label=label)
    cdf.set_ylim(0, 1.02)
    cdf.set_xlabel("TTFT seen by the client (s)")
    cdf.set_ylabel("share of all requests (failures never reach the top)")
    cdf.set_title("TTFT distribution")
    cdf.grid(alpha=0.3)
    cdf.legend()

    labels = [f"{metric} {q}" for metric in ("TTFT", "TPOT", "E2E") for q in ("p50", "p95", "p99")]
    width = 0.8 / max(len(results), 1)
    x = np.arange(len(labels))
    for i, (name, result) in enumerate(results.items()):
        values = [result[f"{metric.lower()}_seconds"][q] or 0.0 for metric in ("TTFT", "TPOT", "E2E")
                  for q in ("p50", "p95", "p99")]
        bars.bar(x + i * width, values, width, label=name)
    bars.set_xticks(x + width * (len(results) - 1) / 2, labels, rotation=45, ha="right")
    bars.set_yscale("log")
    bars.set_ylabel("seconds (log)")
    bars.set_title("percentiles by endpoint")
    bars.grid(alpha=0.3, axis="y")
    bars.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
