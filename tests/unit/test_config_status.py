"""Status objects from parse results validate against our own CRD schemas."""

from __future__ import annotations

import pytest

from metallb_py.config import parse
from metallb_py.config.problems import MAX_LINES_TOTAL
from metallb_py.config.schema_check import check
from metallb_py.config.schemas import KINDS, object_schema
from metallb_py.config.status import (
    SPEAKER_CONDITION,
    STALE_NOTE,
    configuration_state_status,
    same_configuration_state,
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


def test_configuration_state_stale_is_invalid_and_equal_states_are_the_same() -> None:
    _, bad = parse([pool("a", "192.0.2.0/24"), pool("b", "192.0.2.0/25")])
    first = configuration_state_status(bad, SPEAKER_CONDITION, now="2026-01-01T00:00:00Z")
    later = configuration_state_status(bad, SPEAKER_CONDITION, now="2026-02-01T00:00:00Z")
    assert same_configuration_state(first, later)  # only the timestamp differs: no write
    stale = configuration_state_status(bad, SPEAKER_CONDITION, stale=True)
    assert stale["result"] == "Invalid" and stale["errorSummary"] == first["errorSummary"]
    assert stale["conditions"][0]["message"].startswith(STALE_NOTE)
    assert not same_configuration_state(first, stale)  # the note is news to the reader
    _, ok = parse([pool("a", "192.0.2.0/24")])
    valid = configuration_state_status(ok, SPEAKER_CONDITION)
    assert valid["conditions"][0]["message"] == "configuration is valid"
    assert not same_configuration_state(first, valid)


def test_configuration_state_summary_is_bounded() -> None:
    """Thousands of broken pools give a bounded summary that still counts what it left out."""
    _, bad = parse([pool(f"p{i}", "not-an-address") for i in range(2000)])
    status = configuration_state_status(bad, SPEAKER_CONDITION)
    lines = status["errorSummary"].splitlines()
    assert status["result"] == "Invalid" and len(lines) <= MAX_LINES_TOTAL + 1
    assert lines[-1].startswith("... and ") and "other object(s)" in lines[-1]


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
