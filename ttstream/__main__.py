"""``python -m ttstream``: the same command line as ``ttstream``."""

import sys

from .cli import main

sys.exit(main())
