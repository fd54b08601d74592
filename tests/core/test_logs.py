import io
import json
import logging

from hypothesis import given, strategies as st

from llmwatch.core.logs import KeyValueFormatter, configure


def test_key_value_lines_quote_and_redact_secrets():
    stream = io.StringIO()
    configure("INFO", frozenset({"sk-live-123"}), stream=stream)
    log = logging.getLogger("exporters.test")
    log.info("upstream failed", extra={"upstream": "litellm", "error": "401 for key sk-live-123", "count": 3})
    log.debug("hidden")
    line = stream.getvalue().strip()
    assert "\n" not in line
    assert 'level=INFO logger=exporters.test msg="upstream failed" upstream=litellm' in line
    assert 'error="401 for key ********" count=3' in line
    assert "sk-live-123" not in line
    assert line.startswith("ts=") and "Z " in line


def test_exceptions_stay_on_one_line():
    stream = io.StringIO()
    configure("INFO", stream=stream)
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("x").exception("boom")
    assert stream.getvalue().count("\n") == 1
    assert "ValueError: bad" in stream.getvalue()


def test_httpx_request_lines_are_off_unless_debugging():
    stream = io.StringIO()
    configure("INFO", stream=stream)
    logging.getLogger("httpx").info('HTTP Request: GET http://vllm-a:8000/metrics "HTTP/1.1 200 OK"')
    logging.getLogger("httpcore.connection").info("connect_tcp.started")
    logging.getLogger("httpx").warning("retrying")
    assert "HTTP Request" not in stream.getvalue() and "connect_tcp" not in stream.getvalue()
    assert "level=WARNING logger=httpx" in stream.getvalue()

    debug = io.StringIO()
    configure("DEBUG", stream=debug)
    logging.getLogger("httpx").info('HTTP Request: GET http://vllm-a:8000/metrics "HTTP/1.1 200 OK"')
    assert "HTTP Request" in debug.getvalue()


def parse_logfmt(line: str) -> list[tuple[str, str]]:
    """A logfmt line as go-logfmt (and Loki's ``| logfmt``) reads it: keys and bare values run to the
    next space and hold no ``=`` or ``"``; a quoted value is a JSON string (its escapes, \\uXXXX)."""
    pairs, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        end = line.index("=", i)
        key = line[i:end]
        assert key and not set(key) & set(' "'), f"bad key {key!r}"
        i = end + 1
        if line[i:i + 1] == '"':
            value, i = json.JSONDecoder().raw_decode(line, i)  # a JSON string: strict, so no raw control chars
        else:
            end = line.find(" ", i)
            end = len(line) if end < 0 else end
            value = line[i:end]
            assert value and all("\x21" <= c <= "\x7e" and c not in '="' for c in value), f"bad bare value {value!r}"
            i = end
        pairs.append((key, value))
    return pairs


def format_line(message: str, fields: dict, secrets: frozenset[str] = frozenset()) -> str:
    record = logging.LogRecord("llmwatch.test", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(fields)
    return KeyValueFormatter(secrets).format(record)


@given(message=st.text(), values=st.lists(st.text(), max_size=4))
def test_any_text_round_trips_through_logfmt_on_one_line(message, values):
    fields = {f"field{i}": v for i, v in enumerate(values)}
    line = format_line(message, fields)
    assert len(line.splitlines()) == 1 and line.isprintable()  # no \r, \x85, \u2028, escape sequences
    parsed = dict(parse_logfmt(line))
    assert parsed["msg"] == message
    assert {k: parsed[k] for k in fields} == fields


def test_hostile_text_is_quoted_and_escaped():
    line = format_line("x", {"container": "evil\r\nts=1 level=ERROR", "image": "a\x1b[31mred",
                             "sep": "one\u2028two\x85three", "plain": "vllm-a", "empty": ""})
    assert 'container="evil\\r\\nts=1 level=ERROR"' in line
    assert 'image="a\\u001b[31mred"' in line
    assert 'sep="one\\u2028two\\u0085three"' in line
    assert "plain=vllm-a " in line and line.endswith('empty=""')


def test_a_secret_with_quotes_is_redacted_before_escaping():
    line = format_line("key is pa\"ss\\word", {}, frozenset({'pa"ss\\word'}))
    assert dict(parse_logfmt(line))["msg"] == "key is ********"
