"""Pure functions from the environment to the files Prometheus and Alertmanager read."""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import re
from dataclasses import dataclass
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


def is_loopback(address: str) -> bool:
    """Whether a publish address (LLMWATCH_PUBLISH_ADDRESS) keeps ports on this host."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:  # a host name or a typo: not known to be loopback
        return False


# Keys that are sent as one token (an HTTP header, a JSON field): no whitespace at all.
TOKEN_SECRETS = ("LITELLM_MASTER_KEY", "ALERT_PAGERDUTY_ROUTING_KEY")
# Fields Alertmanager expands as Go templates (or compose as ${...}): a value holding template
# syntax would run as a template (or be rewritten) instead of being sent as written.
TEMPLATED_FIELDS = ("ALERT_EMAIL_TO", "ALERT_SMTP_FROM", "ALERT_SMTP_USERNAME", "ALERT_SLACK_CHANNEL",
                    "ALERT_SMTP_SMARTHOST")
SECRETS = (*TOKEN_SECRETS, "ALERT_SMTP_PASSWORD")


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
    )


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
