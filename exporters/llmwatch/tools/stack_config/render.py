"""Pure functions from the environment to the files Prometheus and Alertmanager read."""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import bcrypt
import yaml

from llmwatch.core.checks import Problems, url_problem
from llmwatch.mixin import MIXIN, RUNBOOKS_PAGE

# Exporters that can be switched off with COMPOSE_PROFILES: profile -> (job, address in compose),
# each on its port from the mixin (compose and settings.toml use the same; a test checks). The
# compose service is the address's host part.
SWITCHABLE = ("gpu", "vllm", "litellm", "langfuse", "probe")
EXPORTER_PROFILES = {name: (f"llmwatch-{name}", f"{name}-exporter:{getattr(MIXIN.ports, name)}")
                     for name in SWITCHABLE}
# `docker compose --profile demo up`: the demo's exporters, by job. The demo service writes these
# into <job>-demo.json beside the files above (removed when it stops, and by every stack-config
# run), with simulated="true" on every target.
DEMO_EXPORTERS = {job: f"demo-{address}" for job, address in EXPORTER_PROFILES.values()}
DEMO_LITELLM = "demo:4000"
DEMO_SUFFIX = "-demo.json"
LITELLM_JOB = "litellm"
LITELLM_EXPORTER_SERVICE = "litellm-exporter"
PROMETHEUS_USER = "llmwatch"
# Alertmanager template (written by stack-config) that turns an alert's runbook_url into a link, and
# adds links to its board and logs (config/alertmanager/templates/links.tmpl, links_template()).
LINKS_TEMPLATE = "links.tmpl"
# Who reads the secrets stack-config writes (docker-compose.yml gives each service this user):
# each file is 0600 and belongs to its reader alone.
PROMETHEUS_UID = 65534  # prom/prometheus and prom/alertmanager: nobody
GRAFANA_UID = 472  # grafana/grafana: grafana
EXPORTER_UID = 10001  # docker/Dockerfile: llmwatch
LOKI_UID = 10001  # grafana/loki: loki
# Secrets the exporters read from files (LLMWATCH_<SECTION>__<KEY>_FILE), by file name; each
# comes from the .env variable of the same name in capitals.
EXPORTER_SECRETS = ("prometheus_password", "litellm_master_key", "probe_litellm_key",
                    "langfuse_public_key", "langfuse_secret_key", "langfuse_database_url")
# Kept to characters that need no quoting anywhere the password goes (basic auth, YAML, .env).
PASSWORD_PATTERN = re.compile(r"[A-Za-z0-9._~-]{12,}")
# Receivers in config/alertmanager/alertmanager.yml and which integrations each one gets.
RECEIVER_INTEGRATIONS = {
    "critical": ("webhook", "slack", "email", "pagerduty"),
    "warning": ("webhook", "slack", "email"),
    "watchdog": ("watchdog",),
}
TITLE = '{{ template "llmwatch.title" . }}'
# Remote write to a long-term store (README, "Long-term storage"). The secrets are files beside the
# rendered prometheus.yml, which refers to them by these names.
REMOTE_WRITE_NAME = "long-term"
REMOTE_WRITE_PASSWORD_FILE = "remote_write_password"
REMOTE_WRITE_TOKEN_FILE = "remote_write_token"
# Headers Prometheus sets itself and refuses in `headers` (config/config.go, reservedHeaders, at the
# pinned version), plus Authorization, which has its own settings.
RESERVED_HEADERS = frozenset({
    "authorization", "host", "content-encoding", "content-length", "content-type", "user-agent", "connection",
    "keep-alive", "proxy-authenticate", "proxy-authorization", "www-authenticate", "accept-encoding",
    "x-prometheus-remote-write-version", "x-prometheus-remote-read-version", "x-amz-date", "x-amz-security-token",
    "x-amz-content-sha256"})
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
# Keys of prometheus.yml whose values are file paths, which Prometheus reads relative to the file
# (config.go, SetDirectory): the rendered copy one folder down keeps them pointing at the same files.
PATH_KEYS = frozenset({"rule_files", "scrape_config_files", "files", "password_file", "credentials_file",
                       "bearer_token_file", "ca_file", "cert_file", "key_file", "client_secret_file",
                       "query_log_file", "scrape_failure_log_file"})
# The queue for one host's series (about 10,000 at 30 s: ~330 samples/s). Prometheus' defaults
# except max_shards (50), which sizes the queue for a million samples/s: 10 shards still catch up
# about 200,000 samples/s after an outage, with a fifth of the worst-case memory.
REMOTE_WRITE_QUEUE = {"capacity": 10000, "max_shards": 10, "min_shards": 1, "max_samples_per_send": 2000,
                      "batch_send_deadline": "5s", "min_backoff": "30ms", "max_backoff": "5s"}
# The label that tells hosts apart: every series of the central Prometheus carries it, set by the
# scrape job (LLMWATCH_HOST) or, for an agent host's series, by the agent before remote write.
HOST_LABEL = "host"
# A host name as `hostname -s` gives it; it becomes a label value and a string in Alloy's config.
HOST_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# What an agent host scrapes and sends on (README, "A second GPU host"): the jobs of the central's
# prometheus.yml for what runs on every GPU host. Its own Prometheus (agent mode) is added apart.
AGENT_JOBS = ("node", "cadvisor", "alloy", "llmwatch-gpu", "llmwatch-vllm", "llmwatch-probe")
AGENT_SELF_JOB = "prometheus-agent"
AGENT_PORT = 9090  # the agent's Prometheus, on its compose network only
REMOTE_WRITE_CENTRAL = "central"
CENTRAL_PASSWORD_FILE = "central_password"
CENTRAL_CA_FILE = "central_ca.pem"


@dataclass(frozen=True)
class RemoteWrite:
    """Where and how Prometheus sends a copy of every sample (REMOTE_WRITE_* in .env)."""

    url: str
    user: str = ""
    password: str = ""
    bearer_token: str = ""
    tls_insecure: bool = False
    ca_file: str = ""  # a file name in config/prometheus/
    headers: tuple[tuple[str, str], ...] = ()
    keep: str = ""  # a regex of metric names to send; empty: all
TEXT = '{{ template "llmwatch.text" . }}'


class StackConfigError(Problems):
    """Bad values in the environment; ``problems`` has one line per variable."""


@dataclass(frozen=True)
class StackEnv:
    """The variables of ``.env`` that Prometheus and Alertmanager need, validated."""

    profiles: frozenset[str]
    prometheus_password: str
    litellm_url: str
    litellm_master_key: str
    webhook_url: str
    slack_api_url: str
    slack_channel: str
    pagerduty_routing_key: str
    email_to: str
    smtp_smarthost: str
    smtp_from: str
    smtp_username: str
    smtp_password: str
    smtp_require_tls: bool
    watchdog_url: str
    runbook_url: str = ""
    # Where people open Grafana (GRAFANA_EXTERNAL_URL, else LLMWATCH_EXTERNAL_HOST and GRAFANA_PORT,
    # as docker-compose.yml gives Grafana's root_url): notifications link boards and logs there.
    grafana_url: str = ""
    # Prometheus' address as people open it, which serves the runbooks (consoles/runbooks.html).
    prometheus_url: str = ""
    # Secrets passed on to Grafana and the exporters as files (see EXPORTER_SECRETS).
    grafana_admin_password: str = ""
    litellm_metrics_key: str = ""
    probe_litellm_key: str = ""
    langfuse_public_key: str = ""
    langfuse_secret_key: str = ""
    langfuse_database_url: str = ""
    remote_write: RemoteWrite | None = field(default=None)
    host: str = ""  # LLMWATCH_HOST: the value of the host label on this Prometheus' scrapes; empty: none


@dataclass(frozen=True)
class AgentEnv:
    """An agent host's .env (README, "A second GPU host"): its name and the central it sends to."""

    host: str
    central_url: str  # the central Prometheus' base URL
    central_password: str  # the central's PROMETHEUS_PASSWORD
    loki_url: str  # the central Loki's push URL
    ca_file: str = ""  # a file name in config/prometheus/: the CA of an https central
    profiles: frozenset[str] = frozenset()


def is_loopback(address: str) -> bool:
    """Whether a publish address (LLMWATCH_PUBLISH_ADDRESS) keeps ports on this host."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:  # a host name or a typo: not known to be loopback
        return False


# Keys that are sent as one token (an HTTP header, a JSON field): no whitespace at all.
TOKEN_SECRETS = ("LITELLM_MASTER_KEY", "ALERT_PAGERDUTY_ROUTING_KEY", "REMOTE_WRITE_BEARER_TOKEN")
# Fields Alertmanager expands as Go templates (or compose as ${...}): a value holding template
# syntax would run as a template (or be rewritten) instead of being sent as written.
TEMPLATED_FIELDS = ("ALERT_EMAIL_TO", "ALERT_SMTP_FROM", "ALERT_SMTP_USERNAME", "ALERT_SLACK_CHANNEL",
                    "ALERT_SMTP_SMARTHOST")
SECRETS = (*TOKEN_SECRETS, "ALERT_SMTP_PASSWORD", "REMOTE_WRITE_PASSWORD")


def _text_problem(name: str, value: str) -> str | None:
    """What makes a secret or a mail/template field unusable as written, or None. Values are
    never quoted in the message: they may be secrets."""
    if any(not c.isprintable() for c in value):
        return f"{name} contains a newline or another control character"
    if name in TOKEN_SECRETS and any(c.isspace() for c in value):
        return f"{name} contains a space; a key is one word"
    if name in TEMPLATED_FIELDS and ("{{" in value or "${" in value):
        return f"{name} contains template syntax ({{{{ or ${{}}); give the plain value"
    return None


def _url_problem(name: str, value: str) -> str | None:
    problem = url_problem(value, example="https://hooks.example.com/alerts", base=False)
    return f"{name}: {problem}" if problem else None


def load_env(environ: dict[str, str]) -> StackEnv:
    """Read and check the variables; raise StackConfigError naming every bad one."""
    get = lambda name: environ.get(name, "").strip()  # noqa: E731 - a local shorthand
    problems: list[str] = []

    profiles = frozenset(p.strip() for p in get("COMPOSE_PROFILES").split(",") if p.strip())
    unknown = sorted(profiles - set(EXPORTER_PROFILES) - {"demo"})
    if unknown:
        problems.append(f"COMPOSE_PROFILES has unknown profiles {', '.join(unknown)} "
                        f"(known: {', '.join(sorted(EXPORTER_PROFILES))}, demo)")

    for name in (*SECRETS, *TEMPLATED_FIELDS):
        if problem := _text_problem(name, get(name)):
            problems.append(problem)

    password = get("PROMETHEUS_PASSWORD")
    if not password:
        problems.append("PROMETHEUS_PASSWORD is empty: run ./scripts/up, which writes a random one into .env")
    elif not PASSWORD_PATTERN.fullmatch(password):
        problems.append("PROMETHEUS_PASSWORD must be at least 12 characters of A-Z a-z 0-9 . _ ~ -")

    grafana_url = get("GRAFANA_EXTERNAL_URL") or \
        f"http://{get('LLMWATCH_EXTERNAL_HOST') or 'localhost'}:{get('GRAFANA_PORT') or MIXIN.ports.grafana}"
    prometheus_url = get("PROMETHEUS_EXTERNAL_URL") or \
        f"http://{get('LLMWATCH_EXTERNAL_HOST') or 'localhost'}:{get('PROMETHEUS_PORT') or MIXIN.ports.prometheus}"
    for name, url in (("GRAFANA", grafana_url), ("PROMETHEUS", prometheus_url)):
        if problem := _url_problem(f"{name}_EXTERNAL_URL", url):
            problems.append(problem + f" (from {name}_EXTERNAL_URL, or LLMWATCH_EXTERNAL_HOST and {name}_PORT)")
    for name in ("LITELLM_URL", "ALERT_WEBHOOK_URL", "ALERT_SLACK_API_URL", "WATCHDOG_URL", "LLMWATCH_RUNBOOK_URL"):
        if get(name) and (problem := _url_problem(name, get(name))):
            problems.append(problem)
    if "litellm" in profiles and not get("LITELLM_URL"):
        problems.append("LITELLM_URL is empty but COMPOSE_PROFILES has litellm")
    if "#" in get("LLMWATCH_RUNBOOK_URL"):
        problems.append("LLMWATCH_RUNBOOK_URL is the runbooks page without #...: each alert adds its own anchor")

    if get("ALERT_EMAIL_TO"):
        for name in ("ALERT_SMTP_SMARTHOST", "ALERT_SMTP_FROM"):
            if not get(name):
                problems.append(f"{name} is needed to send e-mail to ALERT_EMAIL_TO")
        smarthost = get("ALERT_SMTP_SMARTHOST")
        if smarthost and not re.fullmatch(r"[^\s:/]+:\d{1,5}", smarthost):
            problems.append(f"ALERT_SMTP_SMARTHOST must be host:port, got {smarthost!r}")
    anonymous = get("GRAFANA_ANONYMOUS_VIEWER").lower() or "false"
    publish_address = get("LLMWATCH_PUBLISH_ADDRESS") or "127.0.0.1"
    if anonymous not in ("true", "false"):
        problems.append(f"GRAFANA_ANONYMOUS_VIEWER must be true or false, got {anonymous!r}")
    elif anonymous == "true" and not is_loopback(publish_address):
        problems.append(f"GRAFANA_ANONYMOUS_VIEWER=true is refused with LLMWATCH_PUBLISH_ADDRESS={publish_address}: "
                        "anyone who reaches Grafana would read every metric and every container's logs without "
                        "logging in. Publish on 127.0.0.1 (README, \"Exposure and TLS\") or set "
                        "GRAFANA_ANONYMOUS_VIEWER=false")
    require_tls = get("ALERT_SMTP_REQUIRE_TLS").lower() or "true"
    if require_tls not in ("true", "false"):
        problems.append(f"ALERT_SMTP_REQUIRE_TLS must be true or false, got {require_tls!r}")
    remote_write = _remote_write(get, problems)
    host = get("LLMWATCH_HOST")
    if host and not HOST_PATTERN.fullmatch(host):
        problems.append(f"LLMWATCH_HOST must be a short host name (letters, digits, . _ -, up to 63), got {host!r}")
    if problems:
        raise StackConfigError(problems)

    return StackEnv(
        profiles=profiles, prometheus_password=password,
        litellm_url=get("LITELLM_URL"), litellm_master_key=get("LITELLM_MASTER_KEY"),
        webhook_url=get("ALERT_WEBHOOK_URL"), slack_api_url=get("ALERT_SLACK_API_URL"),
        slack_channel=get("ALERT_SLACK_CHANNEL"), pagerduty_routing_key=get("ALERT_PAGERDUTY_ROUTING_KEY"),
        email_to=get("ALERT_EMAIL_TO"), smtp_smarthost=get("ALERT_SMTP_SMARTHOST"),
        smtp_from=get("ALERT_SMTP_FROM"), smtp_username=get("ALERT_SMTP_USERNAME"),
        smtp_password=get("ALERT_SMTP_PASSWORD"), smtp_require_tls=require_tls == "true",
        watchdog_url=get("WATCHDOG_URL"), runbook_url=get("LLMWATCH_RUNBOOK_URL"), grafana_url=grafana_url.rstrip("/"),
        prometheus_url=prometheus_url.rstrip("/"),
        grafana_admin_password=get("GRAFANA_ADMIN_PASSWORD"), litellm_metrics_key=get("LITELLM_METRICS_KEY"),
        probe_litellm_key=get("PROBE_LITELLM_KEY"), langfuse_public_key=get("LANGFUSE_PUBLIC_KEY"),
        langfuse_secret_key=get("LANGFUSE_SECRET_KEY"), langfuse_database_url=get("LANGFUSE_DATABASE_URL"),
        remote_write=remote_write, host=host,
    )


def load_agent_env(environ: dict[str, str]) -> AgentEnv:
    """An agent host's variables checked; StackConfigError naming every bad one. The central's
    Loki is reached at the central's host name on Loki's port unless LLMWATCH_CENTRAL_LOKI_URL says
    otherwise (a reverse proxy). These variables are the agent compose file's stack-config's
    (docker-compose.agent.yml), not the central's."""
    agent_value = lambda name: environ.get(name, "").strip()  # noqa: E731 - a local shorthand
    problems: list[str] = []
    profiles = frozenset(p.strip() for p in agent_value("COMPOSE_PROFILES").split(",") if p.strip())
    allowed = {"gpu", "vllm", "probe", "demo"}
    if unknown := sorted(profiles - allowed):
        problems.append(f"COMPOSE_PROFILES has {', '.join(unknown)}, which an agent host does not run "
                        f"(it runs {', '.join(sorted(allowed))})")
    host = agent_value("LLMWATCH_HOST")
    if not HOST_PATTERN.fullmatch(host):
        problems.append(f"LLMWATCH_HOST must be this host's short name (letters, digits, . _ -, up to 63), "
                        f"got {host!r}: ./scripts/up --agent fills it in")
    url = agent_value("LLMWATCH_CENTRAL_URL").rstrip("/")
    if not url:
        problems.append("LLMWATCH_CENTRAL_URL is empty: the central Prometheus, e.g. https://monitor-host:23001")
    elif problem := url_problem(url, example="https://monitor-host:23001"):
        problems.append(f"LLMWATCH_CENTRAL_URL: {problem}")
    password = agent_value("LLMWATCH_CENTRAL_PASSWORD")
    if not PASSWORD_PATTERN.fullmatch(password):
        problems.append("LLMWATCH_CENTRAL_PASSWORD must be the central's PROMETHEUS_PASSWORD (its .env)")
    loki_url = agent_value("LLMWATCH_CENTRAL_LOKI_URL").rstrip("/")
    if loki_url and (problem := url_problem(loki_url, example="http://monitor-host:23002", base=True)):
        problems.append(f"LLMWATCH_CENTRAL_LOKI_URL: {problem}")
    ca_file = agent_value("LLMWATCH_CENTRAL_CA_FILE")
    if ca_file and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", ca_file):
        problems.append(f"LLMWATCH_CENTRAL_CA_FILE is the name of a file in config/prometheus/ (such as "
                        f"central-ca.pem), not a path; got {ca_file!r}")
    if problems:
        raise StackConfigError(problems)
    if not loki_url:
        parts = urlsplit(url)
        loki_url = f"{parts.scheme}://{parts.hostname}:{MIXIN.ports.loki}"
    return AgentEnv(host=host, central_url=url, central_password=password,
                    loki_url=f"{loki_url}/loki/api/v1/push", ca_file=ca_file, profiles=profiles)


def _remote_write(get, problems: list[str]) -> RemoteWrite | None:
    """REMOTE_WRITE_* checked (problems appended, one per variable); None when REMOTE_WRITE_URL is
    empty, which switches remote write off."""
    url, user, password = get("REMOTE_WRITE_URL"), get("REMOTE_WRITE_USER"), get("REMOTE_WRITE_PASSWORD")
    token, ca_file, headers = get("REMOTE_WRITE_BEARER_TOKEN"), get("REMOTE_WRITE_CA_FILE"), get("REMOTE_WRITE_HEADERS")
    keep, insecure = get("REMOTE_WRITE_KEEP"), get("REMOTE_WRITE_TLS_INSECURE").lower() or "false"
    if not url:
        stray = [f"REMOTE_WRITE_{n}" for n, v in (("USER", user), ("PASSWORD", password), ("BEARER_TOKEN", token),
                                                  ("CA_FILE", ca_file), ("HEADERS", headers), ("KEEP", keep)) if v]
        stray += ["REMOTE_WRITE_TLS_INSECURE"] if insecure != "false" else []
        if stray:
            problems.append(f"{', '.join(stray)} set but REMOTE_WRITE_URL is empty (remote write is off): "
                            "give the store's URL, or empty them")
        return None
    count = len(problems)
    if problem := url_problem(url, example="https://mimir.example.com/api/v1/push", base=False):
        problems.append(f"REMOTE_WRITE_URL: {problem}")
    https = urlsplit(url).scheme == "https" if count == len(problems) else True
    if bool(user) != bool(password):
        problems.append("REMOTE_WRITE_USER and REMOTE_WRITE_PASSWORD go together: set both or neither")
    if user and (":" in user or any(not c.isprintable() for c in user)):
        problems.append("REMOTE_WRITE_USER must not contain a colon or control characters (basic auth)")
    if token and (user or password):
        problems.append("REMOTE_WRITE_BEARER_TOKEN and REMOTE_WRITE_USER/REMOTE_WRITE_PASSWORD are two ways to log "
                        "in; Prometheus sends one: set either")
    if insecure not in ("true", "false"):
        problems.append(f"REMOTE_WRITE_TLS_INSECURE must be true or false, got {insecure!r}")
    elif insecure == "true" and not https:
        problems.append("REMOTE_WRITE_TLS_INSECURE=true applies to an https REMOTE_WRITE_URL only")
    if ca_file and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", ca_file):
        problems.append(f"REMOTE_WRITE_CA_FILE is the name of a file in config/prometheus/ (such as "
                        f"remote-write-ca.pem), not a path; got {ca_file!r}")
    elif ca_file and not https:
        problems.append("REMOTE_WRITE_CA_FILE applies to an https REMOTE_WRITE_URL only")
    parsed = _headers(headers, problems)
    if keep:
        try:
            re.compile(keep)
        except re.error as e:
            problems.append(f"REMOTE_WRITE_KEEP is not a regular expression: {e}")
        else:
            if re.search(r"\(\?(=|!|<=|<!)|\\[1-9]", keep):
                problems.append("REMOTE_WRITE_KEEP uses lookaround or a back-reference, which Prometheus' "
                                "regular expressions (RE2) do not have")
    return RemoteWrite(url=url, user=user, password=password, bearer_token=token, tls_insecure=insecure == "true",
                       ca_file=ca_file, headers=parsed, keep=keep)


def _headers(text: str, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """REMOTE_WRITE_HEADERS, ``Name=value`` pairs separated by commas (as OTEL_EXPORTER_OTLP_HEADERS
    writes them), e.g. ``X-Scope-OrgID=llmwatch``. Values are never quoted in a message."""
    found: list[tuple[str, str]] = []
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, equals, value = (part.strip() for part in pair.partition("="))
        if not equals or not HEADER_NAME.fullmatch(name) or not value:
            problems.append("REMOTE_WRITE_HEADERS must be Name=value pairs separated by commas, such as "
                            "X-Scope-OrgID=llmwatch")
            return ()
        if name.lower() == "authorization":
            problems.append("REMOTE_WRITE_HEADERS cannot set Authorization: use REMOTE_WRITE_USER and "
                            "REMOTE_WRITE_PASSWORD, or REMOTE_WRITE_BEARER_TOKEN")
        elif name.lower() in RESERVED_HEADERS:
            problems.append(f"REMOTE_WRITE_HEADERS cannot set {name}: Prometheus sets it itself")
        elif any(not c.isprintable() for c in value):
            problems.append(f"REMOTE_WRITE_HEADERS: the value of {name} contains a control character")
        elif name.lower() in {n.lower() for n, _ in found}:
            problems.append(f"REMOTE_WRITE_HEADERS names {name} twice")
        else:
            found.append((name, value))
    return tuple(found)


def remote_write_ca_problem(env: StackEnv, prometheus_dir: Path) -> str | None:
    """What is wrong with REMOTE_WRITE_CA_FILE as a file in ``prometheus_dir`` (config/prometheus,
    where Prometheus reads it), or None: it must be there and hold a PEM certificate."""
    if env.remote_write is None or not env.remote_write.ca_file:
        return None
    return ca_file_problem("REMOTE_WRITE_CA_FILE", prometheus_dir, env.remote_write.ca_file)


def ca_file_problem(variable: str, prometheus_dir: Path, name: str) -> str | None:
    """What is wrong with the CA certificate file ``name`` in ``prometheus_dir``, or None."""
    try:
        text = (prometheus_dir / name).read_text(errors="replace")
    except OSError as e:
        return f"{variable}: cannot read config/prometheus/{name}: {e.strerror or e}"
    if "-----BEGIN CERTIFICATE-----" not in text:
        return f"{variable}: config/prometheus/{name} holds no PEM certificate"
    return None


def _moved_down(node, key: str = ""):
    """``node`` of the base prometheus.yml with each relative path (PATH_KEYS) as seen from its
    stack/ folder: ``stack/x`` becomes ``x``, anything else ``../x``."""
    if key in PATH_KEYS:
        if isinstance(node, list):
            return [_moved_down(item, key) for item in node]
        if isinstance(node, str) and not node.startswith("/"):
            return node.removeprefix("stack/") if node.startswith("stack/") else f"../{node}"
        return node
    if isinstance(node, dict):
        return {k: _moved_down(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_moved_down(item) for item in node]
    return node


def remote_write_config(rw: RemoteWrite) -> dict:
    """One ``remote_write`` entry (configuration.md, <remote_write>, at the pinned version). Secrets
    are files beside the rendered prometheus.yml, never in it."""
    # No protobuf_message: its default at the pinned version is Remote-Write 1.0, which Mimir, Thanos
    # Receive and VictoriaMetrics all accept, and Prometheus 2.42 (the tests without Go) has no such key.
    entry: dict = {"name": REMOTE_WRITE_NAME, "url": rw.url, "send_exemplars": False,
                   "queue_config": dict(REMOTE_WRITE_QUEUE)}
    if rw.user:
        entry["basic_auth"] = {"username": rw.user, "password_file": REMOTE_WRITE_PASSWORD_FILE}
    if rw.bearer_token:
        entry["authorization"] = {"type": "Bearer", "credentials_file": REMOTE_WRITE_TOKEN_FILE}
    if rw.headers:
        entry["headers"] = dict(rw.headers)
    tls = {**({"ca_file": f"../{rw.ca_file}"} if rw.ca_file else {}),
           **({"insecure_skip_verify": True} if rw.tls_insecure else {})}
    if tls:
        entry["tls_config"] = tls
    if rw.keep:  # Prometheus anchors the regex: it must match the whole metric name
        entry["write_relabel_configs"] = [{"source_labels": ["__name__"], "regex": rw.keep, "action": "keep"}]
    return entry


def prometheus_config(base: dict, env: StackEnv) -> dict:
    """The prometheus.yml Prometheus runs, written into its stack/ folder: the repository's
    config/prometheus/prometheus.yml (``base``), its paths made relative to stack/, with the
    long-term store of REMOTE_WRITE_URL added to any remote_write it has.

    Prometheus reads no environment variables in its configuration, and has no include for
    remote_write; rendering the whole file keeps .env the one place the user configures. With
    LLMWATCH_HOST, every job labels its series with this host (``with_host``)."""
    _check_base(base)
    config = _moved_down(base)
    if env.remote_write is not None:
        config["remote_write"] = [*config.get("remote_write", []), remote_write_config(env.remote_write)]
    if env.host:
        config["scrape_configs"] = [with_host(job, env.host) for job in config.get("scrape_configs", [])]
    return config


def with_host(job: dict, host: str) -> dict:
    """A scrape job whose every series carries ``host``: a target relabel after the job's own, so
    that it holds whatever the targets say. A series that brings its own ``host`` label keeps it as
    ``exported_host``, as any target label does."""
    rule = {"target_label": HOST_LABEL, "replacement": host, "action": "replace"}
    return {**job, "relabel_configs": [*job.get("relabel_configs", []), rule]}


def _check_base(base) -> None:
    if not isinstance(base, dict) or not isinstance(base.get("scrape_configs", []), list) \
            or not isinstance(base.get("remote_write", []), list):
        raise StackConfigError(["prometheus.yml must be a mapping whose scrape_configs and remote_write are lists"])


def agent_prometheus_config(base: dict, env: AgentEnv) -> dict:
    """The prometheus.yml of an agent host's Prometheus (``--agent``): the central's jobs for what
    runs on a GPU host (AGENT_JOBS, taken from the same ``base`` so that jobs, targets and labels
    are the central's own) plus the agent itself, every series labelled with this host, all of it
    remote-written to the central Prometheus with its basic auth (and CA for https).

    Agent mode has no rules, alerting or local queries: the central evaluates everything, so a
    host's alerts and boards look the same wherever its series come from."""
    _check_base(base)
    config = _moved_down(base)
    jobs = [job for job in config.get("scrape_configs", []) if job.get("job_name") in AGENT_JOBS]
    own = {"job_name": AGENT_SELF_JOB, "static_configs": [{"targets": [f"localhost:{AGENT_PORT}"]}]}
    queue = {**REMOTE_WRITE_QUEUE}
    write: dict = {"name": REMOTE_WRITE_CENTRAL, "url": f"{env.central_url}/api/v1/write", "send_exemplars": False,
                   "basic_auth": {"username": PROMETHEUS_USER, "password_file": CENTRAL_PASSWORD_FILE},
                   "queue_config": queue}
    if env.ca_file:
        write["tls_config"] = {"ca_file": CENTRAL_CA_FILE}
    global_ = {k: v for k, v in config.get("global", {}).items() if k in ("scrape_interval", "scrape_timeout")}
    return {"global": global_, "scrape_configs": [with_host(job, env.host) for job in [own, *jobs]],
            "remote_write": [write]}


def agent_alloy_config(base: str, env: AgentEnv) -> str:
    """Alloy's configuration on an agent host: the central's (``base``, config/alloy/config.alloy:
    the same containers, labels and pipeline) with its ``loki.write`` block sending to the central
    Loki instead, with the stack's basic auth (for a reverse proxy that asks for it) and every
    stream labelled with this host."""
    start = base.find('loki.write "local" {')
    if start < 0 or not base.rstrip().endswith("}"):
        raise StackConfigError(['config.alloy must end with its loki.write "local" block'])
    tls = f'\n    tls_config {{\n      ca_file = "/etc/alloy/stack/{CENTRAL_CA_FILE}"\n    }}' if env.ca_file else ""
    block = (f'loki.write "local" {{\n'
             f'  endpoint {{\n'
             f'    url = {json.dumps(env.loki_url)}\n'
             f'    basic_auth {{\n'
             f'      username      = "{PROMETHEUS_USER}"\n'
             f'      password_file = "/etc/alloy/stack/{CENTRAL_PASSWORD_FILE}"\n'
             f'    }}{tls}\n'
             f'  }}\n'
             f'  external_labels = {{ {HOST_LABEL} = {json.dumps(env.host)} }}\n'
             f'}}\n')
    return base[:start] + block


def remote_write_secrets(env: StackEnv) -> dict[str, str]:
    """Prometheus' remote-write secret files by name; empty when unused (an earlier secret is overwritten)."""
    rw = env.remote_write or RemoteWrite(url="")
    return {REMOTE_WRITE_PASSWORD_FILE: rw.password, REMOTE_WRITE_TOKEN_FILE: rw.bearer_token}


def prometheus_web_config(env: StackEnv, rounds: int = 10) -> str:
    """Prometheus' --web.config.file: basic auth for everything it serves."""
    hashed = bcrypt.hashpw(env.prometheus_password.encode(), bcrypt.gensalt(rounds)).decode()
    return yaml.safe_dump({"basic_auth_users": {PROMETHEUS_USER: hashed}})


def basic_credentials(env: StackEnv) -> str:
    """The stack's basic-auth credentials as an ``Authorization: Basic`` header carries them."""
    return base64.b64encode(f"{PROMETHEUS_USER}:{env.prometheus_password}".encode()).decode()


def healthcheck_request(env: StackEnv, path: str = "/-/ready") -> str:
    """The HTTP request a healthcheck sends with ``nc``, read from a file: a password in a wget URL
    or header is on a command line, which ``ps`` shows to every user of the host."""
    return f"GET {path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Basic {basic_credentials(env)}\r\n\r\n"


def litellm_scrape_key(env: StackEnv) -> str:
    """Prometheus' credential for LiteLLM's /metrics: the metrics-only virtual key when there is
    one (README, "Security"), else the master key."""
    return env.litellm_metrics_key or env.litellm_master_key


def exporter_secrets(env: StackEnv) -> dict[str, str]:
    """The exporters' secret files by name (EXPORTER_SECRETS); empty: not set."""
    return {name: getattr(env, name) for name in EXPORTER_SECRETS}


def alertmanager_web_config(env: StackEnv, rounds: int = 10) -> str:
    """Alertmanager's --web.config.file: the same user and password as Prometheus."""
    return prometheus_web_config(env, rounds)


def service_of(address: str) -> str:
    return address.split(":", 1)[0]


def running_profiles(env: StackEnv, services: frozenset[str] | None) -> frozenset[str]:
    """The exporter profiles to scrape: those whose compose service has a container in this
    project (``services``, from the Docker API), or COMPOSE_PROFILES when Docker was not asked.

    ``docker compose --profile demo up`` overrides COMPOSE_PROFILES for the services it starts but
    not for the values it passes in, so only the containers say what runs."""
    if services is None:
        return frozenset(p for p in env.profiles if p in EXPORTER_PROFILES)
    return frozenset(p for p, (_, address) in EXPORTER_PROFILES.items() if service_of(address) in services)


def prometheus_targets(env: StackEnv, services: frozenset[str] | None = None) -> dict[str, list[dict]]:
    """file_sd target lists by file name: one per exporter that runs (``running_profiles``), and
    LiteLLM's own /metrics when the LiteLLM exporter runs."""
    running = running_profiles(env, services)
    files = {}
    for profile, (job, address) in EXPORTER_PROFILES.items():  # demo writes its own (demo_targets)
        files[f"{job}.json"] = [{"targets": [address]}] if profile in running else []
    litellm = []
    if "litellm" in running and env.litellm_url:
        parts = urlsplit(env.litellm_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = parts.path.rstrip("/") + "/metrics"
        litellm = [{"targets": [f"{parts.hostname}:{port}"],
                    "labels": {"__scheme__": parts.scheme, "__metrics_path__": path}}]
    files[f"{LITELLM_JOB}.json"] = litellm
    return files


def agent_targets(env: AgentEnv, services: frozenset[str] | None = None) -> dict[str, list[dict]]:
    """file_sd target lists of an agent host by file name: one per exporter it runs (``services``
    from the Docker API, else COMPOSE_PROFILES), as on the central (``prometheus_targets``)."""
    files = {}
    for profile in ("gpu", "vllm", "probe"):
        job, address = EXPORTER_PROFILES[profile]
        running = service_of(address) in services if services is not None else profile in env.profiles
        files[f"{job}.json"] = [{"targets": [address]}] if running else []
    return files


def compose_services(containers: list[dict], project: str) -> frozenset[str]:
    """Compose service names of a project's containers, from the Docker API's container list."""
    found = set()
    for container in containers:
        labels = container.get("Labels") or {}
        if labels.get("com.docker.compose.project") == project and labels.get("com.docker.compose.oneoff") != "True":
            if service := labels.get("com.docker.compose.service"):
                found.add(service)
    return frozenset(found)


# The Grafana board a notification links, by the alert's name (first match; else the Overview).
ALERT_BOARDS = (("^(Vllm|TtftSlo|ErrorSlo)", "llmwatch-vllm"), ("^Gpu", "llmwatch-gpu"),
                ("^(Litellm|Probe)", "llmwatch-litellm"), ("^Langfuse", "llmwatch-langfuse"),
                ("^Container", "llmwatch-containers"), ("^Host", "llmwatch-system"), ("^Insights", "llmwatch-cost"))


def links_template(env: StackEnv) -> str:
    """The links in a notification, one template each for an alert:

    - ``llmwatch.runbook``: its runbook_url as a link. Prometheus' alerts carry it absolute, at the
      runbooks page Prometheus serves (``<prometheus>/consoles/runbooks.html#anchor``), Loki's as
      the path in the repository (``docs/runbooks.md#anchor``), which becomes the same page. With
      LLMWATCH_RUNBOOK_URL, every alert's anchor on that page instead;
    - ``llmwatch.board``: a "Board: <url>" line, the Grafana board of the alert (ALERT_BOARDS);
    - ``llmwatch.logs``: a "Logs: <url>" line for an alert about a container (label container,
      or name from cAdvisor), the Logs board showing that container's lines.
    Grafana's and Prometheus' addresses are where people open them (StackEnv)."""
    if env.runbook_url:
        base = env.runbook_url.replace("{{", "").replace("}}", "")
        body = f'{base}{{{{ reReplaceAll "^[^#]*" "" . }}}}'
    else:
        served = f"{env.prometheus_url.replace('{{', '').replace('}}', '')}/{RUNBOOKS_PAGE}"
        body = f'{{{{ if match "^https?://" . }}}}{{{{ . }}}}{{{{ else }}}}{served}{{{{ reReplaceAll "^[^#]*" "" . }}}}{{{{ end }}}}'
    grafana = env.grafana_url.replace("{{", "").replace("}}", "")
    board = "".join(f'{{{{ {"if" if i == 0 else "else if"} match "{pattern}" .Labels.alertname }}}}{grafana}/d/{uid}'
                    for i, (pattern, uid) in enumerate(ALERT_BOARDS)) + f"{{{{ else }}}}{grafana}/d/llmwatch-overview{{{{ end }}}}"
    logs = (f'{{{{ with or .Labels.container .Labels.name }}}}Logs: {grafana}/d/llmwatch-logs?var-container='
            f'{{{{ . | urlquery }}}}\n{{{{ end }}}}')
    return ("{{/* Written by llmwatch stack-config from LLMWATCH_RUNBOOK_URL and the stack's addresses. */}}\n"
            f'{{{{ define "llmwatch.runbook" }}}}{body}{{{{ end }}}}\n'
            f'{{{{ define "llmwatch.board" }}}}Board: {board}\n{{{{ end }}}}\n'
            f'{{{{ define "llmwatch.logs" }}}}{logs}{{{{ end }}}}\n')


def demo_targets() -> dict[str, list[dict]]:
    """file_sd target lists of demo mode by file name; every series they give says simulated."""
    labels = {"simulated": "true"}
    files = {f"{job}{DEMO_SUFFIX}": [{"targets": [address], "labels": labels}]
             for job, address in DEMO_EXPORTERS.items()}
    files[f"{LITELLM_JOB}{DEMO_SUFFIX}"] = [{"targets": [DEMO_LITELLM], "labels": labels}]
    return files


def _integrations(env: StackEnv) -> dict[str, tuple[str, dict]]:
    """Integration kind -> (Alertmanager config key, its settings), only those whose secret is set."""
    found: dict[str, tuple[str, dict]] = {}
    if env.webhook_url:
        found["webhook"] = ("webhook_configs", {"url": env.webhook_url, "send_resolved": True})
    if env.slack_api_url:
        slack = {"api_url": env.slack_api_url, "send_resolved": True, "title": TITLE, "text": TEXT}
        if env.slack_channel:
            slack["channel"] = env.slack_channel
        found["slack"] = ("slack_configs", slack)
    if env.email_to:
        email = {"to": env.email_to, "from": env.smtp_from, "smarthost": env.smtp_smarthost,
                 "require_tls": env.smtp_require_tls, "send_resolved": True,
                 "headers": {"Subject": TITLE}, "text": TEXT}
        if env.smtp_username:
            email["auth_username"] = env.smtp_username
            email["auth_password"] = env.smtp_password
        found["email"] = ("email_configs", email)
    if env.pagerduty_routing_key:
        found["pagerduty"] = ("pagerduty_configs", {"routing_key": env.pagerduty_routing_key,
                                                    "description": TITLE, "send_resolved": True})
    if env.watchdog_url:
        found["watchdog"] = ("webhook_configs", {"url": env.watchdog_url, "send_resolved": False})
    return found


def alertmanager_config(base: dict, env: StackEnv) -> dict:
    """The committed alertmanager.yml with each receiver's configured integrations added."""
    if not isinstance(base, dict) or not isinstance(base.get("receivers", []), list) or \
            not all(isinstance(r, dict) and "name" in r for r in base.get("receivers", [])):
        raise StackConfigError(["alertmanager.yml must be a mapping whose receivers are a list of "
                                "tables, each with a name"])
    config = copy.deepcopy(base)
    receivers = {r["name"]: r for r in config.get("receivers", [])}
    missing = sorted(set(RECEIVER_INTEGRATIONS) - set(receivers))
    if missing:
        raise StackConfigError([f"alertmanager.yml has no receiver {name!r}" for name in missing])
    available = _integrations(env)
    for name, kinds in RECEIVER_INTEGRATIONS.items():
        for kind in kinds:
            if kind in available:
                key, settings = available[kind]
                receivers[name].setdefault(key, []).append(dict(settings))
    return config


def enabled_integrations(config: dict) -> dict[str, list[str]]:
    """Receiver -> the integration keys it has, for the start-up log line."""
    return {r["name"]: sorted(k for k in r if k.endswith("_configs")) for r in config.get("receivers", [])}


def dump_json(value) -> str:
    return json.dumps(value, indent=2) + "\n"
