"""The probe exporter exits within 5 s of SIGTERM while its targets drip their answers."""

from __future__ import annotations

from tests.fakes.dripping import DrippingServer
from tests.procs import exporter, free_port, seconds_to_exit, wait_until


def test_the_probe_exits_within_5_s_of_sigterm_while_a_model_list_and_a_probe_drip(tmp_path):
    with DrippingServer() as drip:
        targets = (f'[{{name = "lists", url = "{drip.url}"}}, '
                   f'{{name = "streams", url = "{drip.url}", model = "m"}}]')
        env = {"LLMWATCH_PROBE__TARGETS": targets, "LLMWATCH_PROBE__VLLM": "false",
               "LLMWATCH_PROBE__LITELLM": "false", "LLMWATCH_PROBE__INTERVAL_SECONDS": "1",
               "LLMWATCH_PROBE__TIMEOUT_SECONDS": "30", "LLMWATCH_PROBE__STALL_SECONDS": "15"}
        process = exporter("probe", free_port(), tmp_path / "probe.log", env)
        try:
            # one round starts both turns; the model list is the read that never ends by itself
            wait_until(lambda: "/v1/models" in drip.requests, 20, "the model list in flight")
            seconds = seconds_to_exit(process)
        finally:
            process.stop()
    assert seconds < 5, f"exited {seconds:.1f}s after SIGTERM:\n{process.log()}"
    assert process.proc.returncode == 0, process.log()
