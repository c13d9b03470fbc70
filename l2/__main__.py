"""`python -m l2 ...`: the layer-2 debugging tool (see l2/cli.py)."""

import sys

from l2.cli import main

sys.exit(main())
