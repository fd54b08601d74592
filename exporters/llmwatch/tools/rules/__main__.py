"""``python -m llmwatch.tools.rules``: the same as ``llmwatch rules``."""

import sys

from llmwatch.tools.rules.cli import main

sys.exit(main())
