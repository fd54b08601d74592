"""Logging in key=value form, one line per event, with secrets redacted.

Call sites pass structured fields through ``extra``:
``log.warning("upstream failed", extra={"upstream": name, "error": str(e)})``.
"""

from __future__ import annotations

import logging
import sys
import time

# Attributes every LogRecord has; anything else came from ``extra`` and is printed as key=value.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... msg="..." key=value``; known secret values become ********."""

    def __init__(self, secrets: frozenset[str] = frozenset()):
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = [f"ts={ts}", f"level={record.levelname}", f"logger={record.name}",
                 f"msg={_quote(record.getMessage())}"]
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                parts.append(f"{key}={_quote(value)}")
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        line = " ".join(parts)
        for secret in self.secrets:
            line = line.replace(secret, "********")
        return line


# Libraries that log every HTTP request at INFO: httpx's "HTTP Request: GET ... 200 OK" lines were
# about 97 % of an exporter's log. Only their warnings are kept, unless the level is DEBUG.
CHATTY_LIBRARIES = ("httpx", "httpcore")


def configure(level: str = "INFO", secrets: frozenset[str] = frozenset(), stream=None) -> None:
    """Configure the root logger once, in ``main``; library modules only call getLogger."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)


class WarnOnce:
    """Log a warning once per key (an endpoint and a reason, say) until ``clear()``: a broken
    upstream is reported when it breaks, not on every scrape."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self._seen: set = set()

    def __call__(self, key, message: str, **fields) -> bool:
        """Log ``message`` with ``fields`` unless ``key`` was logged since the last clear; True if logged."""
        if key in self._seen:
            return False
        self._seen.add(key)
        self.logger.warning(message, extra=fields)
        return True

    def clear(self, key=None) -> None:
        """Forget one key (or all): the next failure is reported again."""
        if key is None:
            self._seen.clear()
        else:
            self._seen.discard(key)

    def __contains__(self, key) -> bool:
        return key in self._seen
