"""Every exporter's named scenarios, for the tests that cover all exporters (golden files, catalog)."""

from tests.gpu import scenarios as gpu_scenarios
from tests.insights import scenarios as insights_scenarios
from tests.langfuse import scenarios as langfuse_scenarios
from tests.litellm import scenarios as litellm_scenarios
from tests.probe import scenarios as probe_scenarios
from tests.vllm import scenarios as vllm_scenarios

# exporter section (the word in backticks in its docs/metrics.md heading) -> scenarios whose union
# is its full exposition; golden files live in tests/<exporter>/golden/<scenario>.prom
EXPORTERS = {"gpu": gpu_scenarios.SCENARIOS, "insights": insights_scenarios.SCENARIOS, "langfuse": langfuse_scenarios.SCENARIOS, "litellm": litellm_scenarios.SCENARIOS,
             "probe": probe_scenarios.SCENARIOS, "vllm": vllm_scenarios.SCENARIOS}
