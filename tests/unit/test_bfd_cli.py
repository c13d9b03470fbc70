"""`python -m bfd session`: usage errors exit 2 with one line; stdin commands are checked."""

from __future__ import annotations

import pytest

from bfd.cli import CommandError, apply_command, main
from bfd.engine import Engine
from bfd.profile import Profile


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--local", "198.51.100.11", "--peer", "198.51.100.1", "--tx-ms", "5"], "10-60000"),
        (["--local", "198.51.100.11", "--peer", "2001:db8::1"], "same family"),
        (["--local", "2001:db8::2", "--peer", "2001:db8::1", "--echo-ms", "50"], "IPv4"),
        (["--local", "198.51.100.11", "--peer", "198.51.100.1", "--multiplier", "1"], "2-255"),
    ],
)
def test_bad_values_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["session", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("set --tx-ms 5", "transmitInterval: invalid value 5"),
        ("set --tx-ms fast", "invalid int value"),
        ("set --passive --active", "not allowed"),
        ("reboot", "unknown command"),
        ("stats now", "unknown command"),
    ],
)
def test_bad_stdin_commands_are_refused(line: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        apply_command(Engine(), Profile(), line)


def test_set_merges_into_the_current_profile() -> None:
    profile = apply_command(Engine(), Profile(passive_mode=True), "set --tx-ms 100 --active")
    assert profile.transmit_interval_ms == 100 and profile.receive_interval_ms == 300
    assert profile.passive_mode is False
