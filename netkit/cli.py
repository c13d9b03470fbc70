"""Command-line plumbing shared by the protocol tools (`python -m bgp|bfd|l2`)."""

from __future__ import annotations

import argparse
from typing import NoReturn

EXIT_USAGE = 2


class UsageParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage error is one line on stderr and exit status 2.

    argparse prints the whole usage before the error; in a script's log that buries the line that
    says what is wrong. Subparsers made by `add_subparsers` inherit this class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")
