"""Readers of upstreams that more than one exporter (or tool) uses: Docker discovery of vLLM servers, the streaming completion client."""
