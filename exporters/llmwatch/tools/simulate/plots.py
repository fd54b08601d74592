"""PNG plots of simulation results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ttft_distribution(ttfts: dict[str, np.ndarray], out: Path, title: str) -> None:
    """Empirical CDF of TTFT, one line per label (a run, or monolithic vs disaggregated)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, values in ttfts.items():
        xs = np.sort(values)
        ax.plot(xs, np.arange(1, len(xs) + 1) / max(len(xs), 1), label=label)
    for q in (0.5, 0.9, 0.99):
        ax.axhline(q, color="grey", linewidth=0.5, linestyle=":")
    ax.set_xlabel("TTFT (s)")
    ax.set_ylabel("share of requests")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def sweep(rows: list[dict], out: Path, x_key: str, x_label: str, title: str, slo_seconds: float | None = None) -> None:
    """TTFT p50/p90/p99 against the swept parameter; one colour per series (e.g. prefill rate)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    series = sorted({row.get("series", "") for row in rows})
    for colour, name in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10, series):
        part = sorted((r for r in rows if r.get("series", "") == name), key=lambda r: r[x_key])
        xs = [r[x_key] for r in part]
        for key, style in (("ttft_p50_s", ":"), ("ttft_p90_s", "--"), ("ttft_p99_s", "-")):
            ax.plot(xs, [r[key] for r in part], style, color=colour,
                    label=f"{name + ' ' if name else ''}{key[5:8]}")
    if slo_seconds:
        ax.axhline(slo_seconds, color="red", linewidth=1, label="SLO")
    ax.set_xlabel(x_label)
    ax.set_ylabel("TTFT (s)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
