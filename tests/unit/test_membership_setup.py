"""What the speaker's membership flags turn into: the seeds it joins, the timers it runs, the key
it encrypts with — and a clear one-line error for what cannot work."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from metallb_py import cli
from metallb_py.membership import config as mconfig
from metallb_py.membership.crypto import key_from_secret
from metallb_py.membership.seeds import node_addresses, pod_addresses, seed_addresses
from metallb_py.membership.setup import (
    MAX_TUNABLES_BYTES,
    MembershipSetupError,
    load_config,
    load_keyring,
    wait_for_keyring,
)


def pod(ip: str, phase: str = "Running", deleting: bool = False) -> dict[str, object]:
    meta: dict[str, object] = {"name": f"speaker-{ip}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}}


def test_pods_seed_except_finished_or_deleted_ones() -> None:
    pods = [
        pod("198.51.100.11"),
        pod("198.51.100.12", "Failed"),
        pod("198.51.100.13", deleting=True),
    ]
    assert pod_addresses(pods) == ["198.51.100.11"]


def test_nodes_seed_by_internal_then_external_address() -> None:
    nodes = [
        {
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "n1"},
                    {"type": "InternalIP", "address": "198.51.100.11"},
                    {"type": "ExternalIP", "address": "203.0.113.11"},
                ]
            }
        },
        {"status": {"addresses": [{"type": "ExternalIP", "address": "203.0.113.12"}]}},
        {"metadata": {"name": "no-status"}},
    ]
    assert node_addresses(nodes) == ["198.51.100.11", "203.0.113.12"]


def test_seeds_keep_the_bind_family_drop_self_and_duplicates() -> None:
    got = seed_addresses(
        ["198.51.100.12", "198.51.100.11", "2001:db8::1", "bogus", "198.51.100.12", "198.51.100.3"],
        bind_addr="198.51.100.11",
    )
    assert got == ["198.51.100.3", "198.51.100.12"]
    assert seed_addresses(["2001:db8::2", "198.51.100.1"], bind_addr="2001:db8::1") == [
        "2001:db8::2"
    ]


def test_profiles_and_the_metallb_tunables_file(tmp_path: Path) -> None:
    assert load_config("fast", None) == mconfig.fast()
    assert load_config("lan", None).probe_interval == 1.0
    f = tmp_path / "config.json"
    f.write_text(json.dumps({"ProbeInterval": "200ms", "SuspicionMult": 3}))
    tuned = load_config("fast", str(f))
    assert tuned.probe_interval == 0.2 and tuned.suspicion_mult == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"ProbeInterval": "soon"}', "ProbeInterval"),
        ("[1, 2]", "expected a JSON object"),
        ("{", "config.json"),
        ("x" * (MAX_TUNABLES_BYTES + 1), "larger than"),
    ],
)
def test_a_bad_tunables_file_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "config.json"
    f.write_text(content)
    with pytest.raises(MembershipSetupError, match=message):
        load_config("fast", str(f))


def test_a_named_tunables_file_must_exist_and_a_profile_must_be_known(tmp_path: Path) -> None:
    with pytest.raises(MembershipSetupError, match="does not exist"):
        load_config("fast", str(tmp_path / "missing.json"))
    with pytest.raises(MembershipSetupError, match="unknown membership profile"):
        load_config("turbo", None)


def test_the_key_comes_from_the_mounted_secret_directory_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "secretkey").write_text("abcdefghijklmnopqrstuv\n")
    ring = load_keyring(str(tmp_path))
    assert ring is not None and ring.primary == key_from_secret("abcdefghijklmnopqrstuv")
    ring2 = load_keyring(str(tmp_path / "secretkey"))
    assert ring2 is not None and ring2.primary == ring.primary
    assert load_keyring(None) is None
    with pytest.raises(MembershipSetupError, match="does not exist"):
        load_keyring(str(tmp_path / "nothing-here"))


async def test_the_speaker_waits_for_a_secret_created_after_it_started(tmp_path: Path) -> None:
    waiting = asyncio.create_task(wait_for_keyring(str(tmp_path), interval=0.01))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    (tmp_path / "secretkey").write_text("late-secret")
    ring = await asyncio.wait_for(waiting, 2)
    assert ring is not None and ring.primary == key_from_secret("late-secret")


def test_metallb_flag_names_parse() -> None:
    args = cli.build_parser().parse_args(
        [
            "speaker",
            "--node-name",
            "n1",
            "--ml-bindaddr",
            "198.51.100.11",
            "--ml-bindport",
            "7947",
            "--ml-labels",
            "app=metallb,component=speaker",
            "--ml-wan-config",
        ]
    )
    assert isinstance(args, argparse.Namespace)
    assert (args.ml_bind_addr, args.ml_bind_port, args.ml_profile) == ("198.51.100.11", 7947, "wan")
