"""Make every vLLM version look like the newest: pure functions over parsed families.

vLLM renamed metrics between versions (docs/metrics.md has the table, version by version). A
target's families are re-exposed under the newest name; when a transition release sends both
names, the newest name's series win and the old name is dropped, so nothing is counted twice.
Metrics that only old versions have (V0's swapped requests, CPU cache) keep their own names: they
have no newest equivalent to be folded into, and dropping them would lose data.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmwatch.exporters.vllm.exposition import Family

# Old family name -> newest family name (family names: counters without _total).
RENAMES: dict[str, str] = {
    # deprecated 0.9 (PR #18354), hidden 0.11, removed 0.12 (PR #29330)
    "vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc",
    "vllm:gpu_prefix_cache_queries": "vllm:prefix_cache_queries",
    "vllm:gpu_prefix_cache_hits": "vllm:prefix_cache_hits",
    # deprecated 0.11 (PR #24110), hidden 0.12, removed 0.13; same buckets, same observations
    "vllm:time_per_output_token_seconds": "vllm:inter_token_latency_seconds",
    # V0 0.6.4 to 0.9: a duplicate of the queue-time histogram (PR #9659), hidden 0.9
    "vllm:time_in_queue_requests": "vllm:request_queue_time_seconds",
}


# Appended to the HELP of a renamed family; the merge prefers a HELP without it.
RENAMED_MARK = "[llmwatch: upstream name "


@dataclass(frozen=True)
class Normalised:
    families: list[Family]
    renamed: dict[str, str]  # upstream family name -> name it is exposed under, for this target
    superseded: tuple[str, ...]  # old names dropped because the newest name was also sent


def keep_family(name: str, prefixes: tuple[str, ...]) -> bool:
    """Re-expose a family? Only the configured prefixes, and never the ``*_created`` gauges."""
    return name.startswith(prefixes) and not name.endswith("_created")


def normalise(families: list[Family], prefixes: tuple[str, ...]) -> Normalised:
    """The target's families under the newest names; families without samples are left out.

    ``*_created`` samples are expected to be left out by the reader already (``drop_created``).
    """
    present = {f.name for f in families if f.series}
    out, renamed, superseded = [], {}, []
    for fam in families:
        if not fam.series or not keep_family(fam.name, prefixes):
            continue
        new = RENAMES.get(fam.name)
        if new is not None:
            if new in present:
                superseded.append(fam.name)
                continue
            renamed[fam.name] = new
            fam = _renamed(fam, new)
        out.append(fam)
    return Normalised(out, renamed, tuple(superseded))


def _renamed(fam: Family, new: str) -> Family:
    old = fam.name
    series = [s.renamed(old, new) for s in fam.series]
    return Family(new, fam.type, f"{fam.help} {RENAMED_MARK}{old}]".lstrip(), series, fam.values)
