r"""Logging in key=value (logfmt) form, one line per event, with secrets redacted.

Call sites pass structured fields through ``extra``:
``log.warning("upstream failed", extra={"upstream": name, "error": str(e)})``.

Values carry text from outside (container names, upstream answers, exception messages), so each
value that is not a plain word is quoted and escaped as logfmt parsers (go-logfmt, Loki's
``| logfmt``) read it back: JSON string escapes, and every control, format or line-separator
character (``\r``, ANSI escapes, U+0085, U+2028) written as ``\uXXXX``, so one event is one line
and cannot forge another or recolour a terminal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

# Attributes every LogRecord has; anything else came from ``extra`` and is printed as key=value.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


# Characters a bare value cannot hold: separators and quotes, backslash, and anything not printable.
_NEEDS_QUOTES = re.compile(r'[\s="\\]|[^\x21-\x7e]')
# Left unescaped by json.dumps(ensure_ascii=False): DEL, C1 controls, and every non-printable
# character above ASCII (line and paragraph separators, bidi controls, zero-width characters...).
_UNPRINTABLE = re.compile(r"[^\x00-\x7e]|\x7f")


def _escape_char(match: re.Match) -> str:
    char = match.group()
    if char.isprintable():
        return char
    return json.dumps(char)[1:-1]  # \uXXXX, a surrogate pair above U+FFFF


def _value(value: object) -> str:
    """``value`` as a logfmt value: a bare word when it is one, else a quoted, escaped string."""
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return _UNPRINTABLE.sub(_escape_char, json.dumps(text, ensure_ascii=False))


def _key(key: str) -> str:
    """A logfmt key: printable ASCII without ``=`` or ``"``; anything else becomes ``_``."""
    return re.sub(r'[^\x21-\x7e]|[="]', "_", key) or "_"


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... msg="..." key=value``; known secret values become ********."""

    def __init__(self, secrets: frozenset[str] = frozenset()):
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        fields = [("ts", ts), ("level", record.levelname), ("logger", record.name), ("msg", record.getMessage())]
        fields += [(key, value) for key, value in record.__dict__.items()
                   if key not in _STANDARD and not key.startswith("_")]
        if record.exc_info:
            fields.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{_key(key)}={_value(self._redact(str(value)))}" for key, value in fields)

    def _redact(self, text: str) -> str:
        # Before escaping: a secret with a quote or a backslash in it would not match once escaped.
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return text


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
