"""Rules of monitoring.yml (see HEADER)."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.mixin import fmt
from llmwatch.tools.rules.build import Group, alert, record

HEADER = """\
The monitoring stack watching itself: targets down, rules failing, notifications failing, and
the always-firing Watchdog (a dead man's switch: its receiver must raise the alarm when the
Watchdog stops arriving). Tests: config/prometheus/tests/monitoring_test.yml.
"""


def groups() -> list[Group]:
    return [
        Group('llmwatch-hosts', hosts()),
        Group('llmwatch-monitoring', [
            alert('Watchdog', 'vector(1)', for_='', severity='none',
                  summary='The alerting pipeline works; this alert always fires.',
                  description='Prometheus evaluates rules and Alertmanager delivers them. If the Watchdog stops arriving at its receiver, the monitoring itself is down.'),
            alert('ExporterDown', 'up{job=~"llmwatch-.*|node"} == 0', for_='2m', severity='critical',
                  summary='An exporter is down; its part of the server is not monitored.',
                  description='Prometheus has failed to scrape {{ $labels.job }} at {{ $labels.instance }} for 2 minutes; alerts that depend on it cannot fire.'),
            alert('ExporterDown', 'up{job!~"llmwatch-.*|node|litellm"} == 0', for_='5m', severity='warning',
                  summary='A monitoring component is down.',
                  description='Prometheus has failed to scrape {{ $labels.job }} at {{ $labels.instance }} for 5 minutes.'),
            alert('LitellmMetricsDown', 'up{job="litellm"} == 0', for_='5m', severity='warning',
                  summary="LiteLLM's own /metrics cannot be scraped.",
                  description="Prometheus has failed to scrape LiteLLM's /metrics at {{ $labels.instance }} for 5 minutes (a missing prometheus callback, or a master key Prometheus does not have); error and fallback alerts cannot fire."),
            alert('PrometheusRuleEvaluationFailures', 'increase(prometheus_rule_evaluation_failures_total[5m]) > 0', for_='', severity='warning',
                  summary='Prometheus fails to evaluate rules.',
                  description='Rule group {{ $labels.rule_group }} failed {{ $value | humanize }} evaluations in 5 minutes; its alerts may not fire.'),
            alert('PrometheusConfigReloadFailed', 'prometheus_config_last_reload_successful == 0', for_='5m', severity='warning',
                  summary='Prometheus could not load its configuration.',
                  description='The last configuration reload of {{ $labels.instance }} failed; Prometheus runs the previous one.'),
            alert('PrometheusTsdbCompactionsFailing', """\
increase(prometheus_tsdb_compactions_failed_total[1h]) > 0
  or increase(prometheus_tsdb_head_truncations_failed_total[1h]) > 0
  or increase(prometheus_tsdb_reloads_failures_total[1h]) > 0
""", for_='15m', severity='warning',
                  summary='Prometheus fails to compact its storage.',
                  description='Prometheus on {{ $labels.instance }} has failed compactions, head truncations or block reloads in the last hour; its memory and disk use grow until it stops.'),
            alert('PrometheusTsdbWalFailing', """\
increase(prometheus_tsdb_wal_writes_failed_total[10m]) > 0
  or increase(prometheus_tsdb_wal_corruptions_total[10m]) > 0
  or increase(prometheus_tsdb_wal_truncations_failed_total[1h]) > 0
""", for_='', severity='critical',
                  summary="Prometheus fails to write its write-ahead log.",
                  description='Prometheus on {{ $labels.instance }} failed to write, truncate or read back its write-ahead log in the last minutes: samples are being lost (a full or read-only disk is the usual cause).'),
            # Remote write to a long-term store (REMOTE_WRITE_URL): without it these series do not
            # exist and the two alerts stay silent. Names and behaviour are those of the pinned
            # Prometheus (storage/remote/queue_manager.go): a refused batch (4xx: a wrong password,
            # tenant or rejected samples) is dropped and counted as failed; an unreachable or 5xx
            # store is retried without end, which counts nothing as failed but stops the newest
            # timestamp sent, so falling behind is measured against the clock.
            alert('PrometheusRemoteWriteFailing', """\
rate(prometheus_remote_storage_samples_failed_total[5m])
  / rate(prometheus_remote_storage_samples_total[5m]) > 0.01
""", for_='15m', severity='warning',
                  summary='The long-term store refuses the samples Prometheus sends.',
                  description='{{ $value | humanizePercentage }} of the samples Prometheus on {{ $labels.instance }} sends to {{ $labels.url }} have been refused for 15 minutes (a wrong password or tenant, or samples the store rejects); they are dropped, so the long-term store has gaps. Prometheus itself keeps them.'),
            alert('PrometheusRemoteWriteBehind', """\
time() - max_over_time(prometheus_remote_storage_queue_highest_sent_timestamp_seconds[5m]) > 120
  and max_over_time(prometheus_remote_storage_queue_highest_timestamp_seconds[5m]) > 0
""", for_='15m', severity='warning',
                  summary='Remote write to the long-term store is falling behind.',
                  description='The newest sample Prometheus on {{ $labels.instance }} has delivered to {{ $labels.url }} is {{ $value | humanizeDuration }} old: the store is unreachable, failing or too slow. Unsent samples wait in the write-ahead log, which keeps at least the last two hours; what leaves it unsent never reaches the store.'),
            alert('LokiIngestionFailing', """\
sum by (job, instance, host) (rate(loki_request_duration_seconds_count{route=~"loki_api_v1_push|api_prom_push", status_code=~"5.."}[5m])) > 0
  or sum by (job, instance, host) (rate(loki_discarded_samples_total[5m])) > 0
""", for_='10m', severity='warning',
                  summary='Loki refuses or discards log lines.',
                  description='Loki on {{ $labels.instance }} has answered pushes with 5xx or discarded lines (rate limit, too old, too long) for 10 minutes: those logs are lost.'),
            alert('AlloyLogsNotShipped', """\
sum by (job, instance, host) (rate(loki_write_dropped_entries_total[5m])) > 0
  or sum by (job, instance, host) (rate(loki_write_batch_retries_total[5m])) > 0
""", for_='10m', severity='warning',
                  summary='Alloy cannot ship logs to Loki.',
                  description='Alloy on {{ $labels.instance }} has retried or dropped batches of log lines bound for Loki for 10 minutes; dropped lines are lost.'),
            alert('PrometheusAlertmanagerUnreachable', 'increase(prometheus_notifications_errors_total[5m]) > 0 or prometheus_notifications_alertmanagers_discovered < 1', for_='10m', severity='warning',
                  summary='Prometheus cannot hand alerts to Alertmanager.',
                  description='Prometheus on {{ $labels.instance }} has failed to send alerts to Alertmanager for 10 minutes.'),
            alert('AlertmanagerNotificationsFailing', 'rate(alertmanager_notifications_failed_total[5m]) > 0', for_='10m', severity='warning',
                  summary='Alertmanager fails to deliver notifications.',
                  description='Notifications through {{ $labels.integration }} have failed for 10 minutes; check the receiver settings in .env.'),
        ]),
    ]


def hosts() -> list:
    """The last sample from each host, and the alert for a host gone silent (an agent host down,
    its network cut, or its scraper unable to remote-write). Every scrape, the central's own and
    each agent's, yields ``up``, so its newest timestamp per host is when that host last sent
    anything. An instant query of ``up`` stops returning a series 5 minutes after its last sample,
    so the alert looks back over host_lost_lookback at what was recorded. Series without a host
    label (one host before the change) are left out: they are no host that can be lost."""
    m = mixin.MIXIN
    return [
        record('host:llmwatch_last_sample_timestamp_seconds', 'max by (host) (timestamp(up{host!=""}))',
               comment="When Prometheus last had a sample from each host (any target of it, up or not)."),
        alert('LlmwatchHostLost', f"""\
time() - max by (host) (max_over_time(host:llmwatch_last_sample_timestamp_seconds[{m.host_lost_lookback}]))
  > {fmt(m.host_lost_seconds)}
""", for_=m.host_lost_for, severity='critical',
              summary='Prometheus receives nothing from a host.',
              description=f'No sample has come from this host for {{{{ $value | humanizeDuration }}}} '
                          f'(more than {fmt(m.host_lost_seconds)} s): the host is down, cut off from the central '
                          'Prometheus, or its scraper cannot remote-write. Nothing on it is monitored, and its other '
                          f'alerts cannot fire. It resolves by itself {m.host_lost_lookback} after the last sample.',
              comment=f"A host that sent samples within {m.host_lost_lookback} and none for "
                      f"{fmt(m.host_lost_seconds)} s."),
    ]
