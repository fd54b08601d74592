"""Simulated upstreams (NVML, vLLM, LiteLLM, Langfuse) and the demo that serves them: for tests, benchmarks and demo mode, never imported by an exporter."""
