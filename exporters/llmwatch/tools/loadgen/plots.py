"""The load test's PNG: TTFT distribution per endpoint, and their percentiles side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmwatch.tools.loadgen.run import Record
from llmwatch.tools.simulate.plots import pyplot


def latency_plot(records: dict[str, list[Record]], results: dict[str, dict], out: Path) -> None:
    plt = pyplot()
    fig, (cdf, bars) = plt.subplots(1, 2, figsize=(13, 5))
    for name, rows in records.items():
        ttft = np.sort([r.outcome.ttft for r in rows if r.outcome.ok])
        if len(ttft):
            cdf.plot(ttft, np.arange(1, len(ttft) + 1) / len(ttft), label=name)
    cdf.set_xlabel("TTFT seen by the client (s)")
    cdf.set_ylabel("share of requests")
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
