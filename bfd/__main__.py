"""`python -m bfd` entry point."""

import sys

from bfd.cli import main

sys.exit(main())
