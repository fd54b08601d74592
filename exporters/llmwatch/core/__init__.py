"""The shared core: settings, HTTP server, logging and scrape timing. Nothing exporter-specific."""
