"""Settings: loaded and validated once at start-up, then handed to exporters as frozen dataclasses.

Sources, later ones winning: ``config/settings.toml`` (committed defaults, every key listed there),
``config/.secrets.toml`` (untracked), then environment variables ``LLMWATCH_<SECTION>__<KEY>``.
A secret can instead come from a file named by ``LLMWATCH_<SECTION>__<KEY>_FILE`` (see
:func:`_read_secret_files`).
Environment values are parsed as TOML by dynaconf (``42`` is an int, ``[..]`` a list) and are
otherwise literal: dynaconf's ``@format``/``@jinja``/``@json`` directives are switched off, and its
own control variables (``*_FOR_DYNACONF``, ``DYNACONF_*``) are refused, so no value (a secret
above all) can read other variables or files or change how settings load.

Exporter code never sees dynaconf: each section is described by a frozen dataclass whose fields
carry their constraints in ``metadata`` (see :func:`setting`). Those constraints become dynaconf
validators, all run together so that every bad key is named in one go.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from dynaconf import Dynaconf, ValidationError, Validator
from dynaconf.utils import RENAMED_VARS

from llmwatch.core.checks import Problems, check_ip_address

# dynaconf's old names for its control variables. PROJECT_ROOT is a common variable of its own in
# users' shells and harmless here: root_path is always passed explicitly, which wins over it.
REFUSED_OLD_NAMES = set(RENAMED_VARS) - {"PROJECT_ROOT"}

ENV_PREFIX = "LLMWATCH"
# Where settings.toml lives; read before dynaconf starts, so it is not itself a setting.
CONFIG_DIR_ENV = "LLMWATCH_CONFIG_DIR"
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
MASK = "********"
# LLMWATCH_<SECTION>__<KEY>_FILE: the file holding a secret setting.
FILE_SUFFIX = "_FILE"


class SettingsError(Problems):
    """Invalid configuration. ``problems`` holds one line per bad key."""


def setting(*, min: float | None = None, max: float | None = None, choices: tuple | None = None,
            secret: bool = False, help: str = "", check: Callable[[Any], object] | None = None) -> Any:
    """A dataclass field with validation metadata. Defaults live in settings.toml, not here.

    ``check(value)`` validates what the simple constraints cannot (a list of URLs, say); it
    raises ValueError with a message that completes "<section>.<key> (env ...): ".
    """
    meta = {"min": min, "max": max, "choices": choices, "secret": secret, "help": help, "check": check}
    return dataclasses.field(metadata=meta)


def env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}_{section.upper()}__{key.upper()}"


@dataclass(frozen=True)
class CommonSettings:
    """Settings every exporter shares (table ``[common]``)."""

    listen_address: str = setting(check=check_ip_address, help="address the HTTP server binds")
    log_level: str = setting(choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    scrape_budget_seconds: float = setting(min=0.1, max=120,
                                           help="upstream work per scrape; keep below Prometheus' scrape_timeout")


@dataclass(frozen=True)
class DockerSettings:
    """How exporters reach the Docker Engine API (table ``[docker]``)."""

    host: str = setting(help="empty: DOCKER_HOST, else unix:///var/run/docker.sock")
    timeout_seconds: float = setting(min=0.1, max=60)


# Sections every exporter loads besides its own.
SHARED_SECTIONS: dict[str, type] = {"common": CommonSettings, "docker": DockerSettings}


S = TypeVar("S")


@dataclass(frozen=True)
class Settings(Generic[S]):
    """What an exporter receives: the shared sections and its own."""

    common: CommonSettings
    docker: DockerSettings
    exporter: S
    # Partial views of other sections this one follows (the probe reads [vllm] and [litellm]).
    reads: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Values of secret settings, so the log formatter can redact them wherever they appear.
    secrets: frozenset[str] = frozenset()


def _base_type(tp: Any) -> Any:
    """list[str] -> list, int -> int, str | None -> str."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    return origin or tp


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               list: "a list", dict: "a table"}


def _type_ok(expected: type, value: Any) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is str:
        # TOML-parsed env values may turn digits into numbers; a str field takes them as text.
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    return isinstance(value, expected)


def _validators(section: str, cls: type) -> list[Validator]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{section}.{f.name}"
        where = f"{name} (env {env_name(section, f.name)})"
        expected = _base_type(hints[f.name])
        meta = f.metadata
        out.append(Validator(name, must_exist=True,
                             messages={"must_exist_true": f"{where} is missing from settings.toml"}))
        if expected is not list:  # lists are checked after the environment's list replaced the file's
            out.append(Validator(name, condition=lambda v, t=expected: v is None or _type_ok(t, v),
                                 messages={"condition": f"{where} must be {_TYPE_WORDS.get(expected, expected.__name__)}, got {{value!r}}"}))
        numeric = expected in (int, float)
        if meta.get("min") is not None and numeric:
            out.append(Validator(name, condition=lambda v, lo=meta["min"]: not _type_ok(float, v) or v >= lo,
                                 messages={"condition": f"{where} must be >= {meta['min']}, got {{value!r}}"}))
        if meta.get("max") is not None and numeric:
            out.append(Validator(name, condition=lambda v, hi=meta["max"]: not _type_ok(float, v) or v <= hi,
                                 messages={"condition": f"{where} must be <= {meta['max']}, got {{value!r}}"}))
        if meta.get("choices"):
            out.append(Validator(name, condition=lambda v, c=meta["choices"]: v in c,
                                 messages={"condition": f"{where} must be one of {', '.join(map(str, meta['choices']))}, got {{value!r}}"}))
    return out


def _convert(cls: type, section: str, raw: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        value = raw[f.name]
        expected = _base_type(hints[f.name])
        if expected is float:
            value = float(value)
        elif expected is str and not isinstance(value, str):
            # Keep the text exactly as typed (e.g. a password "0123"), not TOML's reading of it.
            value = os.environ.get(env_name(section, f.name), str(value))
        elif expected is list:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def _replace_env_lists(sections: dict[str, type], raw: dict[str, Any]) -> None:
    """A list set in the environment replaces the file's list (dynaconf's merging would append to it).

    The value is TOML (``["a", {name = "b", url = "c"}]``) or JSON (``[{"name": "b", "url": "c"}]``).
    """
    for name, scls in sections.items():
        hints = typing.get_type_hints(scls)
        for f in dataclasses.fields(scls):
            text = os.environ.get(env_name(name, f.name))
            if text is None or _base_type(hints[f.name]) is not list or not isinstance(raw.get(name), dict):
                continue
            try:
                value = tomllib.loads(f"value = {text}")["value"]
            except tomllib.TOMLDecodeError:
                try:  # JSON is what people type for lists of tables
                    value = json.loads(text)
                except ValueError:
                    value = text
            if isinstance(value, list):
                section = raw[name]
                key = next((k for k in section if k.lower() == f.name), f.name)
                section[key] = value


def _read_secret_files(sections: dict[str, type], raw: dict[str, Any]) -> list[str]:
    """Put the content of each ``LLMWATCH_<SECTION>__<KEY>_FILE`` into its secret setting.

    Compose hands secrets to the exporters as files: a container's environment is returned by the
    Docker API's inspect, a file is not. Surrounding whitespace (a final newline) is dropped."""
    problems = []
    for name, scls in sections.items():
        section = raw.get(name)
        if not isinstance(section, dict):
            continue
        for key in secret_keys(scls):
            # dynaconf read the variable as a key <key>_file of the section: not a setting
            for found in [k for k in section if k.lower() == key + FILE_SUFFIX.lower()]:
                del section[found]
            variable = env_name(name, key) + FILE_SUFFIX
            path = os.environ.get(variable, "").strip()
            if not path:
                continue
            if os.environ.get(env_name(name, key), "").strip():
                problems.append(f"{name}.{key}: set {env_name(name, key)} or {variable}, not both")
                continue
            try:
                value = Path(path).read_text().strip()
            except (OSError, UnicodeDecodeError) as e:
                problems.append(f"{name}.{key} (env {variable}): cannot read {path}: {getattr(e, 'strerror', None) or e}")
                continue
            section[next((k for k in section if k.lower() == key), key)] = value
    return problems


def _checks(sections: dict[str, type], raw: dict[str, Any]) -> list[str]:
    """Run each field's ``check`` (after the type validators passed)."""
    problems = []
    for name, scls in sections.items():
        values = {k.lower(): v for k, v in raw[name].items()}
        hints = typing.get_type_hints(scls)
        for f in dataclasses.fields(scls):
            if _base_type(hints[f.name]) is list and not isinstance(values.get(f.name), list):
                problems.append(f"{name}.{f.name} (env {env_name(name, f.name)}) must be a list "
                                f"(TOML or JSON), got {values.get(f.name)!r}")
                continue
            check = f.metadata.get("check")
            if check is None:
                continue
            try:
                check(values[f.name])
            except ValueError as e:
                problems.append(f"{name}.{f.name} (env {env_name(name, f.name)}): {e}")
    return problems


def _environment_problems(sections: set[str]) -> list[str]:
    """Variables that would change how dynaconf loads (which files, which prefix, casting, Vault or
    Redis loaders, settings from ``DYNACONF_*``) and variables that would replace a whole section.
    Checked before dynaconf starts, since it acts on them while loading."""
    problems = []
    for name in sorted(os.environ):
        upper = name.upper()
        if upper.endswith("_FOR_DYNACONF") or upper.startswith("DYNACONF_") or upper in REFUSED_OLD_NAMES:
            problems.append(f"environment variable {name} would change how llmwatch loads its settings "
                            f"and is not accepted; unset it and use {ENV_PREFIX}_<SECTION>__<KEY> variables")
        elif upper.startswith(ENV_PREFIX + "_") and upper.removeprefix(ENV_PREFIX + "_").lower() in sections:
            section = upper.removeprefix(ENV_PREFIX + "_").lower()
            problems.append(f"environment variable {name} would replace the whole [{section}] section; "
                            f"set one key at a time: {ENV_PREFIX}_{section.upper()}__<KEY>")
    return problems


def secret_keys(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("secret")]


def load(section: str, cls: type, *, known_sections: set[str],
         config_dir: Path | None = None, reads: dict[str, type] | None = None) -> Settings:
    """Load ``[common]``, ``[docker]``, ``[section]`` and the ``reads`` sections; raise
    SettingsError naming every bad key.

    A ``reads`` section is a partial view: its dataclass names only the keys this exporter uses,
    and the section's other keys belong to (and are checked by) the exporter that owns it.

    ``known_sections`` are all sections any exporter reads: a key outside them is a typo
    (``LLMWATCH_GPU_PORT`` with one underscore lands at top level) and is reported, not ignored.
    """
    config_dir = Path(os.environ.get(CONFIG_DIR_ENV) or config_dir or DEFAULT_CONFIG_DIR)
    settings_file = config_dir / "settings.toml"
    if not settings_file.is_file():
        raise SettingsError([f"settings file not found: {settings_file} (set {CONFIG_DIR_ENV})"])
    try:
        committed = tomllib.loads(settings_file.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SettingsError([f"{settings_file}: {e}"]) from None

    reads = dict(reads or {})
    sections = dict(SHARED_SECTIONS) | reads | {section: cls}
    problems = _environment_problems(set(known_sections) | set(sections))
    if problems:
        raise SettingsError(problems)
    for name, scls in sections.items():
        for key in secret_keys(scls):
            if committed.get(name, {}).get(key):
                problems.append(f"{name}.{key} is a secret: set it in the environment "
                                f"({env_name(name, key)}) or config/.secrets.toml, not in settings.toml")

    # merge_enabled: a [section] in .secrets.toml adds to settings.toml's table instead of replacing it.
    # auto_cast=False: "@format {env[HOME]}" or "@jinja ..." is a value, not a directive.
    dyn = Dynaconf(envvar_prefix=ENV_PREFIX, root_path=str(config_dir), merge_enabled=True,
                   settings_files=["settings.toml", ".secrets.toml"], auto_cast=False)
    validators = [v for name, scls in sections.items() for v in _validators(name, scls)]
    dyn.validators.register(*validators)
    try:
        dyn.validators.validate_all()
    except ValidationError as e:
        problems.extend(msg for _, msg in e.details)
    except Exception as e:  # dynaconf parse errors of .secrets.toml or env values
        problems.append(f"could not read settings: {e}")

    raw = {k.lower(): v for k, v in dyn.as_dict().items()}
    _replace_env_lists(sections, raw)
    problems.extend(_read_secret_files(sections, raw))
    for top, value in raw.items():
        if top == CONFIG_DIR_ENV.removeprefix(ENV_PREFIX + "_").lower():
            continue
        if top not in known_sections:
            problems.append(f"unknown setting {top!r} (env {ENV_PREFIX}_{top.upper()}): sections are "
                            f"{', '.join(sorted(known_sections))}; nested keys need a double underscore, "
                            f"e.g. {env_name('gpu', 'port')}")
        elif top in sections and top not in reads and isinstance(value, dict):
            fields = {f.name for f in dataclasses.fields(sections[top])}
            for key in value:
                if key.lower() not in fields:
                    problems.append(f"unknown setting {top}.{key.lower()} (env {env_name(top, key)}); "
                                    f"known keys: {', '.join(sorted(fields))}")
    if not problems:
        problems.extend(_checks(sections, {k: v for k, v in raw.items() if k in sections}))
    if problems:
        raise SettingsError(problems)

    built = {name: _convert(scls, name, {k.lower(): v for k, v in raw[name].items()})
             for name, scls in sections.items()}
    secrets = frozenset(str(getattr(built[name], key)) for name, scls in sections.items()
                        for key in secret_keys(scls) if getattr(built[name], key))
    return Settings(common=built["common"], docker=built["docker"], exporter=built[section],
                    reads={name: built[name] for name in reads}, secrets=secrets)


def describe(settings: Settings, section: str) -> str:
    """The effective settings as TOML-like text, secrets masked (for --check-config)."""
    lines = []
    for name, obj in (("common", settings.common), ("docker", settings.docker), *settings.reads.items(),
                      (section, settings.exporter)):
        lines.append(f"[{name}]")
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get("secret"):
                shown = f'"{MASK}"' if value else '""  # not set'
            elif isinstance(value, str):
                shown = f'"{value}"'
            elif isinstance(value, bool):
                shown = str(value).lower()
            elif isinstance(value, tuple):
                shown = "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in value) + "]"
            else:
                shown = str(value)
            lines.append(f"{f.name} = {shown}  # {env_name(name, f.name)}")
        lines.append("")
    return "\n".join(lines)
