"""Rules of litellm.yml (see HEADER)."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.mixin import Mixin, fmt, percent
from llmwatch.tools.rules import build
from llmwatch.tools.rules.build import Group, alert

HEADER = """\
LiteLLM alerts: the proxy's health and budgets from the llmwatch LiteLLM exporter, error and
fallback rates from LiteLLM's own /metrics (job "litellm"). Thresholds from mixin.py, as for vLLM:
server-side error rate > 1 % warning / > 5 % critical, only with at least min_request_rate
requests per second; client errors (4xx) are information only. Tests: config/prometheus/tests/litellm_test.yml.
"""


def groups() -> list[Group]:
    return [
        Group('llmwatch-litellm', [
            alert('LitellmProxyDown', """\
(llmwatch_litellm_up == 0 unless on (job, instance, host) llmwatch_litellm_alive)
  or llmwatch_litellm_alive == 0
""", for_='2m', severity='critical',
                  summary='The LiteLLM proxy does not answer.',
                  description='LiteLLM has been unreachable or not alive for 2 minutes (seen by {{ $labels.instance }}); every model behind it is unavailable to clients.'),
            alert('LitellmAdminApiFailing', 'llmwatch_litellm_up == 0 and on (job, instance, host) llmwatch_litellm_alive == 1', for_='5m', severity='warning',
                  summary='LiteLLM is alive but its admin API fails for the exporter.',
                  description='LiteLLM answers its liveness probe but the admin API has failed for {{ $labels.instance }} for 5 minutes (a wrong master key is the usual cause; see llmwatch_litellm_scrape_errors_total); spend and deployment metrics are missing.'),
            alert('LitellmNotReady', 'llmwatch_litellm_ready == 0 and on (job, instance, host) llmwatch_litellm_alive == 1', for_='5m', severity='warning',
                  summary='LiteLLM is alive but not ready.',
                  description="LiteLLM's readiness probe, asked by {{ $labels.instance }}, has failed for 5 minutes."),
            alert('LitellmDatabaseDisconnected', 'llmwatch_litellm_db_connected == 0', for_='5m', severity='warning',
                  summary='LiteLLM lost its database.',
                  description='LiteLLM (asked by {{ $labels.instance }}) has reported its database disconnected for 5 minutes; keys, spend tracking and budgets do not work.'),
            alert('LitellmDeploymentUnhealthy', """\
max by (litellm_model_name, api_base, simulated) (litellm_deployment_state) >= 1
  or max by (litellm_model_name, api_base, simulated) (llmwatch_litellm_deployment_healthy == 0)
""", for_='5m', severity='warning',
                  summary='A deployment behind LiteLLM is unhealthy.',
                  description='Deployment {{ $labels.litellm_model_name }} at {{ $labels.api_base }} has been in partial or full outage for 5 minutes; LiteLLM routes around it or fails.'),
            *error_alerts(mixin.MIXIN),
            alert('LitellmFallbackRate', 'requested_model:litellm_fallbacks:ratio_rate5m > 0.05', for_='10m', severity='warning',
                  summary='LiteLLM falls back to other deployments for more than 5 % of requests.',
                  description='Model group {{ $labels.requested_model }} needed a fallback for {{ $value | humanizePercentage }} of its requests over 5 minutes; its primary deployment is failing.'),
            alert('LitellmBudgetNearlySpent', """\
llmwatch_litellm_key_spend_usd / (llmwatch_litellm_key_max_budget_usd > 0) >= 0.9
  or llmwatch_litellm_team_spend_usd / (llmwatch_litellm_team_max_budget_usd > 0) >= 0.9
  or llmwatch_litellm_user_spend_usd / (llmwatch_litellm_user_max_budget_usd > 0) >= 0.9
  or llmwatch_litellm_proxy_budget_spend_usd / (llmwatch_litellm_proxy_max_budget_usd > 0) >= 0.9
""", for_='', severity='warning',
                  summary='A LiteLLM budget is at least 90 % spent.',
                  description='{{ with $labels.api_key_alias }}Key {{ . }}{{ end }}{{ with $labels.team_alias }}Team {{ . }}{{ end }}{{ with $labels.user }}User {{ . }}{{ end }}{{ if not (or $labels.api_key_alias $labels.team_alias $labels.user) }}The proxy{{ end }} has spent {{ $value | humanizePercentage }} of its budget; at 100 % LiteLLM rejects its requests.'),
            alert('LitellmKeyExpiringSoon', 'llmwatch_litellm_key_expiry_timestamp_seconds - time() < 7 * 86400 > 0', for_='', severity='info',
                  summary='A LiteLLM key expires within a week.',
                  description='Key {{ $labels.api_key_alias }} expires in {{ $value | humanizeDuration }}.'),
        ]),
    ]


def error_alerts(m: Mixin) -> list:
    """Server-side failures page or warn; the client's own (4xx) are information only. Both stay
    quiet below the mixin's minimum traffic."""
    return build.error_alerts(
        "Litellm", server_ratio="job:litellm_proxy_errors:ratio_rate5m",
        client_ratio="job:litellm_proxy_client_errors:ratio_rate5m",
        traffic=f"and on (job, host) job:litellm_proxy_requests:rate5m >= {fmt(m.min_request_rate)}",
        limits=m.litellm_error_ratio, client_limit=m.client_error_ratio,
        server_summary="More than {percent} of requests to LiteLLM fail on the server side.",
        server_description="LiteLLM failed {{ $value | humanizePercentage }} of client requests over 5 minutes with a "
                           "server-side error (5xx or no status); client errors (4xx) are not counted.",
        client_summary=f"More than {percent(m.client_error_ratio)} of requests to LiteLLM are refused as client errors.",
        client_description="LiteLLM answered {{ $value | humanizePercentage }} of requests over 5 minutes with a 4xx "
                           "(bad request, invalid or expired key, rate or budget limit): a client to fix, not the server.")
