"""Command-line plumbing shared by the protocol tools (`python -m bgp|bfd|l2`) and metallb-py.

Every front end reports a usage error as one line and exit status 2, stops cleanly on SIGINT or
SIGTERM, and (the protocol tools) logs JSON lines; these helpers keep them doing it the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from netkit import jsonlog

EXIT_USAGE = 2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class UsageError(Exception):
    """A bad flag or argument, reported as one line on stderr with exit status 2."""


class UsageParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage error is one line on stderr and exit status 2.

    argparse prints the whole usage before the error; in a script's log that buries the line that
    says what is wrong. Subparsers made by `add_subparsers` inherit this class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class RaisingParser(UsageParser):
    """A UsageParser that raises `UsageError("PROG: MESSAGE")` instead of exiting.

    For a program with one handler for every usage error, those argparse finds and those found
    later (a missing required value, an unusable environment variable) alike.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """The protocol tools' `--log-level`: the levels of `netkit.jsonlog`, default info."""
    parser.add_argument("--log-level", choices=list(jsonlog.LEVELS), default="info")


class StopSignals:
    """SIGINT and SIGTERM as a request to stop: each is recorded in `received` and sets `event`.

    The programs then stop in order (Cease, AdminDown, answers withdrawn, servers closed) instead
    of dying mid-write; `received` tells a planned restart (SIGTERM) from an interrupt. Create it
    inside the running event loop; `close` gives the signals back to their default handlers.
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.received: list[signal.Signals] = []
        self._loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self._caught, sig)

    def _caught(self, sig: signal.Signals) -> None:
        self.received.append(sig)
        self.event.set()

    async def wait(self, every: float = 0.0, tick: Callable[[], object] = lambda: None) -> None:
        """Return once a stop signal came.

        Meanwhile call `tick` every `every` seconds (0: never): the tools' periodic counters.
        """
        timeout = every if every > 0 else None
        while not self.event.is_set():
            try:
                await asyncio.wait_for(self.event.wait(), timeout)
            except TimeoutError:
                tick()

    def close(self) -> None:
        for sig in STOP_SIGNALS:
            self._loop.remove_signal_handler(sig)


def run_tool(log_level: str, main: Coroutine[Any, Any, int]) -> int:
    """Log JSON lines at `log_level` on stdout, run `main` and return its exit status.

    A Ctrl-C that lands before `main` has set up its `StopSignals` is a stop as well: exit 0, as
    the tools document for SIGINT, rather than a traceback.
    """
    jsonlog.setup(log_level)
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        return 0
