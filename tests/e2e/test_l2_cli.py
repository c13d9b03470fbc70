"""`python -m l2`: bad input is one line on stderr and exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["announce", "--ip", "nope"], "not an IP address"),
        (["announce"], "--ip"),
        (["announce", "--ip", "198.51.100.200", "--burst-count", "-1"], "must not be negative"),
        (["announce", "--ip", "198.51.100.200", "--filter", "bogus"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "l2", *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert result.stdout == ""
