"""The stack's start-up configuration: what Prometheus and Alertmanager need from ``.env``.

Prometheus and Alertmanager cannot read environment variables in their configuration files, yet
the user configures llmwatch in one place, ``.env``. The one-shot compose service ``stack-config``
runs ``llmwatch stack-config`` before them and writes, into their volumes:

- Prometheus: ``prometheus.yml`` (the repository's, with its paths made relative to the volume
  and remote write to a long-term store when REMOTE_WRITE_URL is set; its password or token in
  files beside it), ``web.yml`` (basic auth, bcrypt of PROMETHEUS_PASSWORD), the password itself for
  Prometheus' own scrape, LiteLLM's master key for scraping LiteLLM's /metrics, and one target
  file per llmwatch exporter switched on in COMPOSE_PROFILES (a disabled exporter has no target,
  hence no "exporter down" alert);
- Alertmanager: ``config/alertmanager/alertmanager.yml`` with an integration added to each
  receiver whose secret is set (webhook, Slack, e-mail, PagerDuty, the Watchdog's dead man's
  switch), plus the notification templates.

Everything is validated first; a bad value stops with one line per problem naming the variable.
"""
