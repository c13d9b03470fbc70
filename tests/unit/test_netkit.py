"""The helpers the protocol libraries share: the Internet checksum, BPF packing, process tuning,
the command-line plumbing (one-line usage errors, stop signals, JSON-lines logging).

Attaching a filter to a real socket is tested in tests/interop/test_netkit_bpf.py.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
import os
import signal
import struct

import pytest
from scapy.layers.inet import IP, UDP

from netkit import bpf, process
from netkit.checksum import internet_checksum, ones_complement_sum
from netkit.cli import (
    EXIT_USAGE,
    RaisingParser,
    StopSignals,
    UsageError,
    UsageParser,
    add_log_level,
    run_tool,
)
from netkit.timer import CoreTimer


def test_internet_checksum_matches_rfc_1071_and_scapy() -> None:
    # RFC 1071 §3's worked example: the words sum to 0xDDF2 (after the end-around carry).
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_complement_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D
    header = bytes(IP(src="192.0.2.1", dst="198.51.100.2", id=7) / UDP(sport=1, dport=2))[:20]
    zeroed = header[:10] + b"\0\0" + header[12:]
    assert internet_checksum(zeroed) == struct.unpack("!H", header[10:12])[0]
    assert ones_complement_sum(header) == 0xFFFF, "an intact header sums to all ones"


def test_odd_length_is_padded_with_a_zero_byte() -> None:
    assert internet_checksum(b"\x12\x34\x56") == internet_checksum(b"\x12\x34\x56\x00")


def test_program_packs_as_struct_sock_filter() -> None:
    assert bpf.pack([(0x06, 1, 2, 0xFFFF)]) == struct.pack("=HBBI", 6, 1, 2, 0xFFFF)
    assert bpf.pack([(0x15, 0, 0, -1)]) == struct.pack("=HBBI", 0x15, 0, 0, 0xFFFFFFFF)


def test_tune_gc_freezes_start_up_objects_and_sets_thresholds() -> None:
    before = gc.get_threshold()
    try:
        process.tune_gc((4000, 40, 400))
        assert gc.get_threshold() == (4000, 40, 400)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_set_realtime_rejects_out_of_range_priorities() -> None:
    assert process.set_realtime(0) == "real-time priority must be in 1-99"
    assert process.set_realtime(100) == "real-time priority must be in 1-99"


def test_core_timer_rearms_only_when_the_deadline_changes() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        fired: list[str] = []
        timer = CoreTimer(loop, lambda: fired.append("fired"))
        soon = loop.time() + 0.01
        timer.arm(soon)
        handle = timer._handle
        timer.arm(soon)
        assert timer._handle is handle, "same deadline: the handle is kept"
        timer.arm(soon + 0.01)
        assert timer.deadline == soon + 0.01
        await asyncio.sleep(0.05)
        assert timer.deadline is None, "a fired timer is disarmed"
        timer.arm(loop.time() + 0.01)
        timer.cancel()
        await asyncio.sleep(0.03)
        return fired

    assert asyncio.run(scenario()) == ["fired"]


@pytest.mark.parametrize(
    ("main", "argv", "prog"),
    [
        ("bfd.cli", ["session", "--tx-ms", "x"], "python -m bfd session"),
        ("l2.cli", ["announce", "--ip", "x"], "python -m l2 announce"),
        ("bgp.speak_cli", ["--local-as", "1"], "python -m bgp speak"),
        ("bgp.decode_cli", ["--bogus"], "python -m bgp decode"),
    ],
)
def test_protocol_tools_refuse_a_bad_flag_in_one_line(
    main: str, argv: list[str], prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(main)
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
    assert exc.value.code == EXIT_USAGE
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), lines


def test_usage_parser_subcommands_inherit_the_one_line_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = UsageParser(prog="tool")
    parser.add_subparsers(dest="command", required=True).add_parser("run").add_argument(
        "--n", type=int
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--n", "many"])
    assert capsys.readouterr().err == "tool run: error: argument --n: invalid int value: 'many'\n"


def test_raising_parser_hands_the_one_line_to_the_caller() -> None:
    parser = RaisingParser(prog="tool")
    parser.add_subparsers(dest="command").add_parser("run").add_argument("--n", type=int)
    with pytest.raises(UsageError) as exc:
        parser.parse_args(["run", "--n", "many"])
    assert str(exc.value) == "tool run: argument --n: invalid int value: 'many'"


def test_log_level_flag_offers_the_jsonlog_levels() -> None:
    parser = UsageParser(prog="tool")
    add_log_level(parser)
    assert parser.parse_args([]).log_level == "info"
    assert parser.parse_args(["--log-level", "warn"]).log_level == "warn"
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-level", "loud"])


def test_stop_signals_record_each_signal_and_tick_meanwhile() -> None:
    async def scenario() -> tuple[list[signal.Signals], int]:
        stop = StopSignals()
        ticks = 0

        def tick() -> None:
            nonlocal ticks
            ticks += 1
            if ticks == 3:
                os.kill(os.getpid(), signal.SIGTERM)

        await asyncio.wait_for(stop.wait(0.01, tick), 5)
        stop.close()
        return stop.received, ticks

    received, ticks = asyncio.run(scenario())
    assert received == [signal.SIGTERM] and ticks == 3
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "close() gave the signal back"


def test_stop_signals_without_an_interval_only_wait() -> None:
    async def scenario() -> list[signal.Signals]:
        stop = StopSignals()
        asyncio.get_running_loop().call_later(0.01, os.kill, os.getpid(), signal.SIGINT)
        await asyncio.wait_for(stop.wait(), 5)
        stop.close()
        return stop.received

    assert asyncio.run(scenario()) == [signal.SIGINT]


def test_run_tool_logs_json_lines_and_returns_the_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def tool() -> int:
        logging.getLogger("tool").warning("toolRan", extra={"answer": 42})
        logging.getLogger("tool").info("belowTheLevel")
        return 7

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        assert run_tool("warn", tool()) == 7
    finally:
        root.handlers[:], root.level = saved
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["event"] == "toolRan" and json.loads(lines[0])["answer"] == 42


def test_run_tool_treats_an_early_ctrl_c_as_a_stop() -> None:
    async def interrupted() -> int:
        raise KeyboardInterrupt

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        assert run_tool("info", interrupted()) == 0
    finally:
        root.handlers[:], root.level = saved
