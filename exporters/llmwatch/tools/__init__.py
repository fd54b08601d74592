"""Tools: command-line programs built on the exporters and the queueing model, never run by the stack's exporters."""
