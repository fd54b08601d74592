"""llmwatch: monitoring for a self-hosted LLM server.

Roles, one folder each, with imports pointing only downwards (checked by import-linter, see
pyproject.toml):

    cli             the ``llmwatch`` command
    simulation      simulated upstreams and the demo            (tests, benchmarks, demo mode)
    tools           simulate, loadgen, stack-config, dashboards, rules
    exporters       gpu, vllm, litellm, langfuse, insights, probe  (never import each other)
    upstreams, queueing, mixin   what several exporters or tools share: upstream clients,
                    the TTFT queueing model, the thresholds and SLOs of rules and dashboards
    core            the runtime every exporter uses: settings, HTTP, logging, scrape timing
"""

__version__ = "0.1.0"
