"""The memberlist codec against Go: golden vectors from go-msgpack/compress/lzw/crypto, Python
bytes decoded by Go, and live exchanges with a real hashicorp/memberlist member on loopback.

The Go side is tests/lab/memberlist (built once per source hash); without Go these skip,
except under CI=true where they fail.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from metallb_py.membership import lzw, wire
from metallb_py.membership.crypto import (
    Keyring,
    decrypt_payload,
    encrypt_payload,
    key_from_secret,
)
from metallb_py.membership.messages import (
    Ack,
    Alive,
    Dead,
    ErrorResp,
    IndirectPing,
    Message,
    Nack,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
)
from tests.lab.memberlist_peer import GoMemberlistPeer, run_tool

IP = bytes([10, 0, 0, 1])
VSN = (1, 5, 2, 0, 0, 0)
LOCALHOST = bytes([127, 0, 0, 1])

# The values vectors.go encodes, by name.
EXPECTED: dict[str, Message] = {
    "ping": Ping(1, "node-a"),
    "ping_source": Ping(70000, "node-a", IP, 7946, "node-b"),
    "ping_long": Ping(4294967295, "n" * 40),
    "indirect_ping": IndirectPing(300, IP, 7946, "node-c", True, IP, 7947, "node-b"),
    "indirect_bare": IndirectPing(3, IP, 7946, "node-c"),
    "ack": Ack(9, b"pong"),
    "ack_nil": Ack(9),
    "nack": Nack(9),
    "err": ErrorResp("boom"),
    "suspect": Suspect(4, "node-a", "node-b"),
    "alive": Alive(256, "node-a", IP, 7946, b"m", VSN),
    "alive_nometa": Alive(1, "node-a", IP, 7946, b"", VSN),
    "dead": Dead(65536, "node-a", "node-a"),
}
PUSH_PULL = PushPull(
    (
        PushNodeState("node-a", IP, 7946, 1, NodeState.ALIVE, b"", VSN),
        PushNodeState("node-b", bytes([10, 0, 0, 2]), 7946, 7, NodeState.DEAD, b"x", VSN),
    ),
    join=True,
    user_state=b"usr",
)


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    return json.loads(run_tool(["-vectors"]))


def go_decode(lines: list[str]) -> list[dict[str, Any]]:
    out = run_tool(["-decode"], stdin="".join(line + "\n" for line in lines))
    return [json.loads(line) for line in out.splitlines()]


# --- Go's bytes, Python's reading ----------------------------------------------------------


def test_lzw_matches_go_byte_for_byte(vectors: dict[str, Any]) -> None:
    names = set()
    for vec in vectors["lzw"]:
        data, packed = bytes.fromhex(vec["input"]), bytes.fromhex(vec["output"])
        assert lzw.compress(data) == packed, vec["name"]
        assert lzw.decompress(packed, len(data)) == data, vec["name"]
        names.add(vec["name"])
    # The big inputs run through several table resets at 4095 codes.
    assert {"lcg2", "lcg26", "empty", "kwkwk"} <= names


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_message_matches_go(vectors: dict[str, Any], name: str) -> None:
    go_bytes = bytes.fromhex(vectors["messages"][name])
    assert wire.encode_message(EXPECTED[name]) == go_bytes
    assert wire.decode_message(go_bytes) == EXPECTED[name]


def test_stream_bodies_match_go(vectors: dict[str, Any]) -> None:
    msgs = vectors["messages"]
    assert wire.encode_stream(PUSH_PULL) == bytes.fromhex(msgs["push_pull"])
    assert wire.decode_stream(bytes.fromhex(msgs["push_pull"])) == [PUSH_PULL]
    user = bytes.fromhex(msgs["user_stream"])
    assert wire.encode_stream(UserMsg(b"hello")) == user
    assert wire.decode_stream(user) == [UserMsg(b"hello")]
    # A stream always compresses when asked (packets only when it helps).
    compressed = bytes.fromhex(msgs["compress_ping"])
    assert wire.encode_stream(EXPECTED["ping"], compress=True) == compressed
    assert wire.decode_packet(compressed) == [EXPECTED["ping"]]


def test_compound_and_crc_match_go(vectors: dict[str, Any]) -> None:
    msgs = vectors["messages"]
    pair = [EXPECTED["ping"], EXPECTED["ack"]]
    assert wire.encode_packet(pair) == bytes.fromhex(msgs["compound"])
    assert wire.encode_packet(pair, crc=True) == bytes.fromhex(msgs["crc_compound"])
    assert wire.decode_packet(bytes.fromhex(msgs["crc_compound"])) == pair


def test_encryption_matches_go(vectors: dict[str, Any]) -> None:
    assert len(vectors["encrypted"]) == 18  # 3 key sizes x 2 versions x 3 additional data
    for vec in vectors["encrypted"]:
        key, nonce = bytes.fromhex(vec["key"]), bytes.fromhex(vec["nonce"])
        aad, plain = bytes.fromhex(vec["aad"]), bytes.fromhex(vec["plain"])
        sealed = bytes.fromhex(vec["out"])
        assert encrypt_payload(vec["version"], key, plain, aad, nonce=nonce) == sealed
        assert decrypt_payload([key], sealed, aad) == plain


def test_key_derivation_matches_metallb(vectors: dict[str, Any]) -> None:
    for vec in vectors["keys"]:
        assert key_from_secret(vec["secret"]).hex() == vec["key"]


# --- Python's bytes, Go's reading ----------------------------------------------------------


def _go_fields(msg: Message) -> dict[str, Any]:
    """What Go's JSON of the decoded struct should hold ([]byte as base64, nil as null)."""

    def b64(value: bytes) -> str | None:
        return base64.b64encode(value).decode() if value else None

    if isinstance(msg, Ping):
        return {
            "SeqNo": msg.seq_no,
            "Node": msg.node,
            "SourceAddr": b64(msg.source_addr),
            "SourcePort": msg.source_port,
            "SourceNode": msg.source_node,
        }
    if isinstance(msg, IndirectPing):
        return {
            "SeqNo": msg.seq_no,
            "Target": b64(msg.target),
            "Port": msg.port,
            "Node": msg.node,
            "Nack": msg.nack,
            "SourceAddr": b64(msg.source_addr),
            "SourcePort": msg.source_port,
            "SourceNode": msg.source_node,
        }
    if isinstance(msg, Ack):
        return {"SeqNo": msg.seq_no, "Payload": b64(msg.payload)}
    if isinstance(msg, Nack):
        return {"SeqNo": msg.seq_no}
    if isinstance(msg, ErrorResp):
        return {"Error": msg.error}
    if isinstance(msg, Suspect | Dead):
        return {"Incarnation": msg.incarnation, "Node": msg.node, "From": msg.from_}
    assert isinstance(msg, Alive)
    return {
        "Incarnation": msg.incarnation,
        "Node": msg.node,
        "Addr": b64(msg.addr),
        "Port": msg.port,
        "Meta": b64(msg.meta),
        "Vsn": b64(bytes(msg.vsn)),
    }


GO_KIND = {
    Ping: "ping",
    IndirectPing: "indirect_ping",
    Ack: "ack",
    Nack: "nack",
    ErrorResp: "err",
    Suspect: "suspect",
    Alive: "alive",
    Dead: "dead",
}


def test_go_decodes_python_messages() -> None:
    names = sorted(EXPECTED)
    lines = [
        f"{GO_KIND[type(EXPECTED[n])]} {wire.encode_message(EXPECTED[n]).hex()}" for n in names
    ]
    results = go_decode(lines)
    assert len(results) == len(names)
    for name, result in zip(names, results, strict=True):
        assert result["ok"], (name, result)
        assert result["value"] == _go_fields(EXPECTED[name]), name


def test_go_decodes_python_streams_lzw_and_ciphertext() -> None:
    data = os.urandom(30000) + b"abc" * 20000  # random and repetitive: both table regimes
    key = key_from_secret("interop")
    sealed0 = encrypt_payload(0, key, b"hello go", b"label")
    sealed1 = encrypt_payload(1, key, b"hello go", b"")
    results = go_decode(
        [
            f"push_pull {wire.encode_stream(PUSH_PULL).hex()}",
            f"user_stream {wire.encode_stream(UserMsg(b'hi')).hex()}",
            f"compress {wire.encode_stream(PUSH_PULL, compress=True).hex()}",
            f"lzw {lzw.compress(data).hex()}",
            f"lzw {lzw.compress(b'').hex()}",
            f"decrypt {sealed0.hex()} {key.hex()} {b'label'.hex()}",
            f"decrypt {sealed1.hex()} {key.hex()}",
        ]
    )
    assert all(r["ok"] for r in results), results
    pp = results[0]["value"]
    assert pp["header"] == {"Nodes": 2, "UserStateLen": 3, "Join": True}
    assert [n["Name"] for n in pp["nodes"]] == ["node-a", "node-b"]
    assert pp["nodes"][1]["State"] == 2 and pp["user"] == b"usr".hex()
    assert results[1]["value"] == {"payload": b"hi".hex()}
    assert results[2]["value"] == wire.encode_stream(PUSH_PULL).hex()
    assert results[3]["value"] == data.hex()
    assert results[4]["value"] == ""
    assert results[5]["value"] == results[6]["value"] == b"hello go".hex()


# --- A live Go member on loopback ----------------------------------------------------------

SECRETS = ["", "interop-secret"]


@pytest.fixture(params=SECRETS, ids=["plain", "encrypted"])
def go_peer(request: pytest.FixtureRequest) -> Iterator[tuple[GoMemberlistPeer, Keyring | None]]:
    """A Go member and the keyring to talk to it (None: no encryption)."""
    with GoMemberlistPeer.start(name="go-a", secret=request.param) as peer:
        yield peer, Keyring.from_secret(request.param)


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    return sock


def _receive(
    sock: socket.socket, keyring: Keyring | None, want: type, timeout: float = 10.0
) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            continue
        for msg in wire.decode_packet(data, keyring=keyring, require_encryption=bool(keyring)):
            if isinstance(msg, want):
                return msg
    raise AssertionError(f"no {want.__name__} within {timeout}s")


def _stream_exchange(
    peer: GoMemberlistPeer, msg: Message, keyring: Keyring | None, timeout: float = 10.0
) -> Message:
    with socket.create_connection(("127.0.0.1", peer.port), timeout=timeout) as conn:
        conn.sendall(wire.encode_stream(msg, keyring=keyring, label_header_first=True))
        decoder = wire.StreamDecoder(
            keyring=keyring, require_encryption=bool(keyring), expect_label_header=False
        )
        while True:
            chunk = conn.recv(4096)
            assert chunk, "Go closed the stream without answering"
            reply = decoder.feed(chunk)
            if reply is not None:
                return reply


def test_go_acks_python_udp_ping(go_peer: tuple[GoMemberlistPeer, Keyring | None]) -> None:
    peer, keyring = go_peer
    with _udp_socket() as sock:
        port = sock.getsockname()[1]
        ping = Ping(4242, "go-a", LOCALHOST, port, "py")
        sock.sendto(wire.encode_packet([ping], keyring=keyring), ("127.0.0.1", peer.port))
        ack = _receive(sock, keyring, Ack)
    assert isinstance(ack, Ack) and ack.seq_no == 4242


def test_go_acks_python_tcp_ping(go_peer: tuple[GoMemberlistPeer, Keyring | None]) -> None:
    # Go compresses its stream replies by default: this also reads Go's LZW output.
    peer, keyring = go_peer
    reply = _stream_exchange(peer, Ping(77, "go-a"), keyring)
    assert reply == Ack(77)


def test_push_pull_join_with_go(go_peer: tuple[GoMemberlistPeer, Keyring | None]) -> None:
    peer, keyring = go_peer
    with _udp_socket() as sock:
        port = sock.getsockname()[1]
        me = PushNodeState("py", LOCALHOST, port, 1, NodeState.ALIVE, b"", (1, 5, 2, 0, 0, 0))
        reply = _stream_exchange(peer, PushPull((me,), join=True), keyring)
        assert isinstance(reply, PushPull) and reply.join  # Go echoes the join flag
        (go_state,) = [n for n in reply.nodes if n.name == "go-a"]
        assert go_state.port == peer.port and go_state.addr == LOCALHOST
        assert go_state.state == NodeState.ALIVE and go_state.vsn[:3] == (1, 5, 2)
        peer.wait_event("join", name="py")
        # Go now probes us; we speak protocol 5, so its packets carry a CRC header.
        probe = _receive(sock, keyring, Ping)
        assert isinstance(probe, Ping) and probe.node == "py"
        sock.sendto(
            wire.encode_packet([Ack(probe.seq_no)], keyring=keyring, crc=True),
            ("127.0.0.1", peer.port),
        )
    assert peer.member_states()["py"] == "alive"


def test_go_refuses_wrong_key() -> None:
    with GoMemberlistPeer.start(name="go-a", secret="right") as peer:
        wrong = Keyring.from_secret("wrong")
        with socket.create_connection(("127.0.0.1", peer.port), timeout=10) as conn:
            conn.sendall(wire.encode_stream(Ping(1, "go-a"), keyring=wrong))
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        # Go answers with an error message sealed with its own key: we cannot open it.
        with pytest.raises(wire.WireError) as err:
            wire.decode_stream(data, keyring=wrong, expect_label_header=False)
        assert err.value.reason == "decrypt"
        right = Keyring.from_secret("right")
        (msg,) = wire.decode_stream(data, keyring=right, expect_label_header=False)
        assert isinstance(msg, ErrorResp) and "decrypt" in msg.error
