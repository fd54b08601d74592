"""``python -m llmwatch.core.health PORT``: exit 0 when the exporter on PORT answers /health.

For container healthchecks: the exporter image has Python but no curl.
"""

import sys
import urllib.request


def main(argv: list[str]) -> int:
    port = int(argv[1]) if len(argv) > 1 else 9445
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as e:
        print(f"health check failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
