"""Status objects from parse results validate against our own CRD schemas."""

from __future__ import annotations

import pytest

from metallb_py.config import parse
from metallb_py.config.schema_check import check
from metallb_py.config.schemas import KINDS, object_schema
from metallb_py.config.status import (
    SPEAKER_CONDITION,
    configuration_state_status,
    session_state_object,
)
from tests.lab.config_objects import pool


def _schema(kind: str) -> dict[str, object]:
    k = KINDS[kind]
    return object_schema(k, k.storage)


def test_configuration_state_valid_and_invalid() -> None:
    _, ok = parse([pool("a", "192.0.2.0/24")])
    status = configuration_state_status(ok, SPEAKER_CONDITION)
    assert status["result"] == "Valid" and status["conditions"][0]["reason"] == "Reconciled"
    _, bad = parse([pool("a", "192.0.2.0/24"), pool("b", "192.0.2.0/25"), pool("c", "x")])
    status = configuration_state_status(bad, SPEAKER_CONDITION)
    assert status["result"] == "Invalid" and len(status["errorSummary"].splitlines()) == 2
    assert "rule pool-overlap" in status["errorSummary"]
    obj = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": "speaker-n1"},
        "status": status,
    }
    assert check(obj, _schema("ConfigurationState")) == []


def test_session_state_object() -> None:
    obj = session_state_object(
        "metallb-system",
        "node1",
        "tor",
        state="Established",
        peer_address="192.0.2.1",
        established_since="2026-01-01T00:00:00Z",
        prefixes_sent=3,
        bfd_state="Up",
    )
    assert obj["metadata"]["name"] == "node1-tor"
    assert check(obj, _schema("BGPSessionState")) == []
    with pytest.raises(ValueError):
        session_state_object("metallb-system", "n", "p", state="Up")
