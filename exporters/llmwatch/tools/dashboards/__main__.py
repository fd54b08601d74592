"""``python -m llmwatch.tools.dashboards``: the same as ``llmwatch dashboards``."""

import sys

from llmwatch.tools.dashboards.cli import main

sys.exit(main())
