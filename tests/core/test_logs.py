import io
import logging

from llmwatch.core.logs import configure


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
