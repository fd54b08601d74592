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
