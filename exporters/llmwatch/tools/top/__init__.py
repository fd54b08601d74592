"""``llmwatch top``: the stack at a glance in a terminal, read from its Prometheus.

For the maintainer on the GPU host over SSH, without a browser: per model (replicas, request
rate, TTFT and TPOT p95 against the model's SLO, errors, queue, KV cache, tokens/s, cost, the
scaling advice), per GPU (utilisation, memory, temperature, power, XID/ECC trouble, the container
holding it), the heartbeat and the firing alerts. ``source`` finds and reads Prometheus,
``snapshot`` turns its answers into data, ``render`` into tables or JSON, ``live`` runs the
keyboard-driven view, ``cli`` the command.
"""
