import sys

from metallb_py.cli import main

sys.exit(main())
