"""llmwatch exporters: one package, a sub-package per exporter, and a small shared core."""

__version__ = "0.1.0"
