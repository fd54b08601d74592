"""Checks of user input shared by settings, stack-config and the tools: one rule for a URL, one
reader for YAML files, and one error that carries every problem found, so a user fixes all bad
keys in one go."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


class Problems(ValueError):
    """Invalid input; ``problems`` holds one line per bad key or value."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def url_problem(url: object, *, example: str = "http://10.0.0.5:8000", base: bool = True) -> str | None:
    """What is wrong with an http(s) URL, or None: the scheme, a host, a valid port, no spaces or
    control characters, no user:password@ (credentials have their own settings and must not end
    up in logs or labels), and for a ``base`` URL no ?query or #fragment."""
    if not isinstance(url, str):
        return f"{url!r} is not an http(s) URL such as {example}"
    if any(c.isspace() or not c.isprintable() for c in url):
        return f"{url!r} contains spaces or control characters"
    try:
        parts = urlsplit(url)
    except ValueError as e:  # "Invalid IPv6 URL", characters that NFKC turns into separators
        return f"{url!r} is not a valid URL ({e})"
    if "@" in parts.netloc:
        hidden = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()
        return f"{hidden!r} must not carry credentials (user:password@); give them in their own settings"
    try:
        port = parts.port
    except ValueError:
        return f"{url!r} has an invalid port"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) {'base ' if base else ''}URL such as {example}"
    if port == 0:
        return f"{url!r} has port 0; give a port from 1 to 65535 or none"
    if base and (parts.query or parts.fragment):
        return f"{url!r} must be a base URL without ?query or #fragment"
    return None


def check_url(url: object, where: str = "", *, example: str = "http://10.0.0.5:8000", base: bool = True) -> str:
    """The URL without a trailing slash; ValueError("<where>: <problem>") when it is not usable."""
    problem = url_problem(url, example=example, base=base)
    if problem:
        raise ValueError(f"{where}: {problem}" if where else problem)
    return str(url).rstrip("/")


def url_setting(example: str):
    """A ``setting(check=...)`` for a base URL such as ``example``."""
    def check(value: object) -> None:
        check_url(value, example=example)
    return check


def check_ip_address(value: object) -> None:
    """A ``setting(check=...)`` for an address to bind: an IPv4 or IPv6 address, not a host name
    (a name could resolve to a public interface) and not empty."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be an IP address such as 127.0.0.1 or 0.0.0.0, got {value!r}")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"must be an IP address such as 127.0.0.1 or 0.0.0.0, got {value!r}") from None


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; Problems("<path>, line L, column C: <what is wrong>") when the
    file cannot be read or parsed, so the user is sent to the exact place (PyYAML's own message
    names only "<unicode string>")."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise Problems([f"{path}: cannot read: {e.strerror or e}"]) from None
    except UnicodeDecodeError as e:
        raise Problems([f"{path}: not UTF-8 text (byte {e.start})"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        what = " ".join(part for part in (e.context, e.problem) if part)
        raise Problems([f"{where}: not valid YAML: {what}"]) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (a control character, say)
        line = text.count("\n", 0, e.position) + 1
        raise Problems([f"{path}, line {line}: not valid YAML: character {e.character!r} is not allowed"]) from None
    except yaml.YAMLError as e:
        raise Problems([f"{path}: not valid YAML: {e}"]) from None
