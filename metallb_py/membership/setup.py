"""Builds the speaker's membership from its flags: profile, tunables file, key, seeds.

MetalLB's speaker enables memberlist when both `--ml-bindaddr` and `--ml-labels` are set. Ours
needs only the bind address: with labels it seeds from the speaker Pods, without (or when no Pod
matches: systemd hosts, the demo) from the Nodes' addresses.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metallb_py.kube.rest import NODES, PODS, Rest
from metallb_py.log import get_logger
from metallb_py.membership.config import MembershipConfig, apply_memberlist_json, profile
from metallb_py.membership.crypto import Keyring
from metallb_py.membership.seeds import node_addresses, pod_addresses, seed_addresses
from metallb_py.membership.service import MembershipService

# MetalLB mounts the `metallb-memberlist-config` ConfigMap here (optional).
DEFAULT_TUNABLES_FILE = "/etc/metallb/memberlist/config.json"
SECRET_FILE_NAME = "secretkey"
MAX_TUNABLES_BYTES = 64 * 1024
KEY_POLL_INTERVAL = 2.0

log = get_logger("membership")


class MembershipSetupError(ValueError):
    """A flag or file that makes membership impossible; the message is for the user."""


def load_config(profile_name: str, tunables_file: str | None) -> MembershipConfig:
    try:
        config = profile(profile_name)
    except (KeyError, ValueError):
        raise MembershipSetupError(f"unknown membership profile {profile_name!r}") from None
    path = tunables_file or ""
    explicit = bool(tunables_file)
    if not path:
        path = DEFAULT_TUNABLES_FILE
    if not os.path.exists(path):
        if explicit:
            raise MembershipSetupError(f"membership tunables file {path} does not exist")
        return config
    try:
        raw = Path(path).read_bytes()[: MAX_TUNABLES_BYTES + 1]
        if len(raw) > MAX_TUNABLES_BYTES:
            raise MembershipSetupError(f"{path}: larger than {MAX_TUNABLES_BYTES} bytes")
        data = json.loads(raw or b"{}")
        if not isinstance(data, dict):
            raise MembershipSetupError(f"{path}: expected a JSON object")
        return apply_memberlist_json(config, data)
    except OSError as exc:
        raise MembershipSetupError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:  # JSON errors and bad tunables
        if isinstance(exc, MembershipSetupError):
            raise
        raise MembershipSetupError(f"{path}: {exc}") from None


def secret_file(path: str) -> Path:
    """MetalLB's flag names the directory the Secret is mounted in; a file path works too."""
    p = Path(path)
    return p / SECRET_FILE_NAME if p.is_dir() else p


def load_keyring(path: str | None) -> Keyring | None:
    """The key from the mounted Secret; None (unencrypted) when no path is given."""
    if not path:
        return None
    f = secret_file(path)
    try:
        secret = f.read_bytes().strip()
    except FileNotFoundError:
        raise MembershipSetupError(f"membership secret {f} does not exist (yet)") from None
    except OSError as exc:
        raise MembershipSetupError(f"membership secret {f}: {exc.strerror}") from None
    return Keyring.from_secret(secret)


def make_seeds(
    rest: Rest, namespace: str, labels: str, bind_addr: str, self_addrs: Callable[[], list[str]]
) -> Callable[[], Any]:
    async def seeds() -> list[str]:
        found: list[str] = []
        if labels:
            pods = await rest.get(PODS.path(namespace), {"labelSelector": labels})
            found = pod_addresses(pods.get("items") or [])
        if not found:
            nodes = await rest.get(NODES.path())
            found = node_addresses(nodes.get("items") or [])
        return seed_addresses(found, bind_addr=bind_addr, exclude=self_addrs())

    return seeds


async def wait_for_keyring(path: str, interval: float = KEY_POLL_INTERVAL) -> Keyring | None:
    """Wait for the mounted Secret to appear: the controller creates it after the speakers may
    have started, and the kubelet fills an optional Secret volume in later."""
    warned = False
    while True:
        try:
            return load_keyring(path)
        except MembershipSetupError as exc:
            if not warned:
                log.warning(
                    "membershipSecretMissing",
                    error=str(exc),
                    msg="membership waits for its key; until then every Node is a layer-2 "
                    "candidate",
                )
                warned = True
        await asyncio.sleep(interval)


def build(args: Any, rest: Rest) -> MembershipService:
    """The membership service for `metallb-py speaker` flags (raises MembershipSetupError).
    Its keyring is None until `wait_for_keyring` has found the key, when a path is given."""
    config = load_config(args.ml_profile, args.ml_config)
    keyring = None
    try:
        return MembershipService(
            args.node_name,
            args.ml_bind_addr,
            int(args.ml_bind_port),
            config,
            keyring=keyring,
            label=args.ml_label or "",
            seeds=make_seeds(rest, args.namespace, args.ml_labels or "", args.ml_bind_addr, list),
        )
    except ValueError as exc:
        raise MembershipSetupError(f"--ml-bind-addr {args.ml_bind_addr}: {exc}") from None
