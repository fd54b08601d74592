"""``python -m llmwatch``: the ``llmwatch`` command."""

import sys

from llmwatch.cli import main

sys.exit(main())
