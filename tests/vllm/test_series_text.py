"""The reader's fast path (series text looked up, or parsed by its own grammar) agrees with
prometheus-client's parser line by line, on plain and awkward series texts alike."""

from __future__ import annotations

import math

from hypothesis import given, settings, strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from llmwatch.exporters.vllm.exposition import PLAIN_SERIES, ExpositionReader

names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,10}", fullmatch=True)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,6}", fullmatch=True).filter(lambda n: n not in ("le", "quantile"))
# Raw label-value text as a server might write it: escapes, quotes, braces, commas, spaces, non-ASCII.
raw_values = st.lists(st.sampled_from(['a', '1', ' ', ',', '=', '{', '}', '\\\\', '\\"', '\\n', '\\t', 'é', '\u2028', '#',
                                       '"', '\\']), max_size=6).map("".join)
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(floatToGoString),
                   st.integers(-10**6, 10**6).map(str), st.sampled_from(["1e3", "+Inf", "-Inf", "NaN", "0x1", "1_0", ""]))


@st.composite
def sample_lines(draw):
    """One sample line: mostly plain, sometimes with spaces, trailing commas, duplicate or reserved label names."""
    name = draw(names)
    keys = draw(st.lists(st.one_of(label_names, st.just("__x")), max_size=4))
    pairs = [f'{k}{draw(st.sampled_from(["=", " = ", "="]))}"{draw(raw_values)}"' for k in keys]
    labels = ""
    if pairs or draw(st.booleans()):
        labels = "{" + draw(st.sampled_from([",", ", "])).join(pairs) + draw(st.sampled_from(["", ","])) + "}"
    timestamp = draw(st.sampled_from(["", "", " 1700000000000"]))
    return f"{name}{labels}{draw(st.sampled_from([' ', '  ', chr(9)]))}{draw(values)}{timestamp}"


def reference(line: str):
    """(name, labels, value) by prometheus-client's parser, or None where it refuses the line."""
    try:
        [family] = text_string_to_metric_families(line + "\n")
        [sample] = family.samples
    except Exception:
        return None
    return sample.name, sample.labels, float(sample.value)


def same(a, b) -> bool:
    return a[:2] == b[:2] and ((math.isnan(a[2]) and math.isnan(b[2])) or a[2] == b[2])


@settings(max_examples=1000, deadline=None)
@given(st.lists(sample_lines(), min_size=1, max_size=4))
def test_reader_agrees_with_prometheus_client_on_each_line(lines):
    reader = ExpositionReader()
    for scrape in range(2):  # the second read finds every series text in the cache
        for line in lines:
            families, problems = reader.read(line + "\n")
            mine = [(s.name, s.labels, s.value) for fam in families for s in fam.samples]
            theirs = reference(line)
            if mine:
                assert theirs is not None and same(mine[0], theirs), (line, mine, theirs)
            elif theirs is not None and not problems[0].startswith(("invalid metric or label name", "invalid value")):
                raise AssertionError(f"refused a line the reference reads: {line!r}: {problems}")


@settings(max_examples=500, deadline=None)
@given(sample_lines())
def test_the_fast_grammar_reads_what_it_matches_like_prometheus_client(line):
    """Lines whose series text the fast grammar takes never reach the reference parser: each must read the same."""
    key, _, _ = line.partition(" ") if "{" not in line else (line[: line.rfind("}") + 1], "", "")
    if PLAIN_SERIES.fullmatch(key) is None or key.startswith("__") or "{__" in key or ",__" in key:
        return
    families, problems = ExpositionReader().read(line + "\n")
    mine = [(s.name, s.labels, s.value) for fam in families for s in fam.samples]
    theirs = reference(line)
    if theirs is None:
        assert not mine, line
    else:
        assert (mine and same(mine[0], theirs)) or problems, line


def test_a_series_spelt_two_ways_in_one_body_is_kept_once():
    families, problems = ExpositionReader().read('a_bucket{le="1"} 1\na_bucket{le="1.0"} 2\n')
    assert not problems
    assert [(s.name, s.labels, s.value) for fam in families for s in fam.samples] == [("a_bucket", {"le": "1.0"}, 1.0)]


def test_invalid_lines_are_skipped_and_counted_and_the_rest_read():
    body = 'a{x="1"} 1\na{x="1} 2\nb 1_x\nc{x="1",x="2"} 3\nd 4\n'
    reader = ExpositionReader()
    for _ in range(2):
        families, problems = reader.read(body)
        assert [s.name for fam in families for s in fam.samples] == ["a", "d"]
        assert len(problems) == 3
