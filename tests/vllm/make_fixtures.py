"""Write tests/vllm/fixtures/vllm-<version>.prom from the simulated vLLM (exporters/vllm/fakevllm.py).

    .venv/bin/python -m tests.vllm.make_fixtures

The files are committed: tests read them, so a change to the simulator shows up as a reviewed
fixture diff, not as silently different test input. ``awkward.prom`` is written by hand.
"""

from __future__ import annotations

from pathlib import Path

from llmwatch.simulation.vllm import busy_engine, render_metrics

FIXTURES = Path(__file__).parent / "fixtures"


# fixture file -> (vLLM version, engines, fresh); scenarios serve the same engines' /v1/models.
FLEET = {
    # V0 just started: HELP/TYPE without samples, nothing to re-expose yet
    "vllm-0.5.3-fresh.prom": ("0.5.3", lambda: [busy_engine(seed=1, requests=0)], True),
    # V0 with the throughput gauges (removed ~0.7.1)
    "vllm-0.5.3.prom": ("0.5.3", lambda: [busy_engine(seed=2, model_name="mistral-7b", max_model_len=8192,
                                                      root="mistralai/Mistral-7B-Instruct-v0.3")], False),
    # V0 at its fullest: swapped, CPU cache, hit-rate gauges, time_in_queue_requests, old buckets
    "vllm-0.6.4.prom": ("0.6.4", lambda: [busy_engine(seed=3, model_name="llama-3-8b", max_model_len=8192,
                                                      root="meta-llama/Meta-Llama-3-8B-Instruct")], False),
    # V1 transition: gpu_cache_usage_perc beside kv_cache_usage_perc, both prefix-cache counter names
    "vllm-0.10.1.prom": ("0.10.1", lambda: [busy_engine(seed=4, model_name="qwen2.5-32b",
                                                        root="Qwen/Qwen2.5-32B-Instruct")], False),
    # 0.11: inter_token_latency beside the deprecated time_per_output_token, multiprocess label order
    "vllm-0.11.0.prom": ("0.11.0", lambda: [busy_engine(seed=5, model_name="gpt-oss-120b", max_model_len=131072,
                                                        root="openai/gpt-oss-120b")], False),
    # newest: two data-parallel engines, LoRA adapters, the 2026 families
    "vllm-0.28.0.prom": ("0.28.0", lambda: [busy_engine(seed=6 + e, lora_adapters=("sql-lora", "chat-lora"))
                                            for e in range(2)], False),
}


def fixtures() -> dict[str, str]:
    return {name: render_metrics(version, engines(), fresh=fresh) for name, (version, engines, fresh) in FLEET.items()}


def main() -> None:
    for name, text in fixtures().items():
        (FIXTURES / name).write_text(text)
        print(f"wrote {FIXTURES / name} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
