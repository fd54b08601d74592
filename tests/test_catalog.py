"""docs/metrics.md lists exactly what the exporters expose: names, types and label sets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.all_scenarios import EXPORTERS

CATALOG = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)` \| (?P<type>\w+) \| (?P<labels>[^|]*) \| [^|]+ \| .+ \|$")

# Upstream families passed through: the upstream decides their labels; the catalog names the usual ones.
PASSTHROUGH = ("vllm:", "http_")


def catalog_section(exporter: str) -> dict[str, tuple[str, frozenset[str]]]:
    text = CATALOG.read_text()
    match = re.search(rf"^## .*`{exporter}`$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no section for `{exporter}` in {CATALOG}"
    rows = {}
    for line in match.group(1).splitlines():
        row = ROW.match(line)
        if row:
            labels = frozenset(l.strip() for l in row["labels"].split(",") if l.strip() not in ("", "–"))
            assert row["name"] not in rows, f"{row['name']} listed twice"
            rows[row["name"]] = (row["type"], labels)
    return rows


def exposed(exporter: str, tmp_path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    seen: dict[str, tuple[str, set[str]]] = {}
    for name, scenario in EXPORTERS[exporter].items():
        (tmp_path / name).mkdir()
        for family in text_string_to_metric_families(scenario(tmp_path / name)):
            metric = family.name + ("_total" if family.type == "counter" else "")
            entry = seen.setdefault(metric, (family.type, set()))
            for sample in family.samples:
                entry[1].update(k for k in sample.labels  # a histogram's le, a summary's quantile are implied
                                if k not in ("le", "quantile") or family.type not in ("histogram", "summary"))
    return {k: (t, frozenset(l)) for k, (t, l) in seen.items()}


@pytest.mark.parametrize("exporter", sorted(EXPORTERS))
def test_catalog_matches_exposition(exporter, tmp_path):
    documented = catalog_section(exporter)
    actual = exposed(exporter, tmp_path)
    undocumented = {k: v for k, v in actual.items() if k not in documented}
    never_exposed = {k: v for k, v in documented.items() if k not in actual}
    different = {k: (documented[k], actual[k]) for k in actual.keys() & documented.keys()
                 if documented[k][0] != actual[k][0]
                 or (documented[k][1] != actual[k][1] if not k.startswith(PASSTHROUGH) else not documented[k][1] <= actual[k][1])}
    assert not undocumented, f"exposed but not in docs/metrics.md: {undocumented}"
    assert not never_exposed, f"in docs/metrics.md but no scenario exposes it: {never_exposed}"
    assert not different, f"type or labels differ (documented, exposed): {different}"
