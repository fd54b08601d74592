"""The GPU exporter process exits promptly on SIGTERM whatever NVML is doing."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import httpx

from tests.procs import Process, free_port, wait_until

# The real exporter (settings, server, collector) over a simulated node whose GPU 1 never answers.
HUNG_GPU_EXPORTER = textwrap.dedent("""
    import sys, threading
    from llmwatch import exporters
    from llmwatch.core import runner
    from llmwatch.exporters import gpu
    from llmwatch.simulation.nvml import h200_node

    def build(settings):
        node = h200_node(2)
        node.gpus[1].hang = threading.Event()  # never set
        return gpu.build(settings, nvml=node)

    sys.exit(runner.run(gpu.SPEC, [], exporters.known_sections(), build=build))
""")


def test_exits_within_5_seconds_of_sigterm_with_a_hung_gpu(tmp_path):
    port = free_port()
    script = tmp_path / "hung_gpu_exporter.py"
    script.write_text(HUNG_GPU_EXPORTER)
    env = {"LLMWATCH_COMMON__LISTEN_ADDRESS": "127.0.0.1", "LLMWATCH_GPU__PORT": str(port),
           "LLMWATCH_GPU__CONTAINERS": "false", "LLMWATCH_COMMON__SCRAPE_BUDGET_SECONDS": "1"}
    with Process([sys.executable, str(script)], tmp_path / "gpu.log", env) as proc:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
                   or proc.proc.poll() is not None, 30, "GPU exporter /health")
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'llmwatch_gpu_up{gpu="1"} 0.0' in text, proc.log()  # a read is now stuck in NVML
        assert 'llmwatch_gpu_up{gpu="0"} 1.0' in text
        proc.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            returncode = proc.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 10 s after SIGTERM:\n{proc.log()}") from None
        assert time.monotonic() - sent < 5, proc.log()
        assert returncode == 0, proc.log()
