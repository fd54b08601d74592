"""``python -m llmwatch.tools.stack_config``: the same as ``llmwatch stack-config``."""

import sys

from llmwatch.tools.stack_config.cli import main

sys.exit(main())
