import sys

from exporters.core.cli import main

sys.exit(main())
