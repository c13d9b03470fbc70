"""Decoding of the Kubernetes protobuf request bodies that kubectl's imperative commands send
(`kubectl create configmap|secret|namespace|serviceaccount|token`), for the few kinds they cover.

The envelope is the 4-byte magic `k8s\\0` and a runtime.Unknown message (typeMeta, raw); `raw` is
the object in the field numbering of Kubernetes' generated.proto files, transcribed below for
these kinds. Anything else is refused with 415 and a hint to send JSON.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"

# field number -> (json name, kind, sub-descriptor)
Desc = dict[int, tuple[str, str, Any]]

TIME: Desc = {1: ("seconds", "int", None), 2: ("nanos", "int", None)}
OWNER_REF: Desc = {
    5: ("apiVersion", "string", None),
    1: ("kind", "string", None),
    3: ("name", "string", None),
    4: ("uid", "string", None),
    6: ("controller", "bool", None),
    7: ("blockOwnerDeletion", "bool", None),
}
OBJECT_META: Desc = {
    1: ("name", "string", None),
    2: ("generateName", "string", None),
    3: ("namespace", "string", None),
    5: ("uid", "string", None),
    6: ("resourceVersion", "string", None),
    7: ("generation", "int", None),
    11: ("labels", "map_ss", None),
    12: ("annotations", "map_ss", None),
    13: ("ownerReferences", "rep_msg", OWNER_REF),
    14: ("finalizers", "rep_string", None),
}
LOCAL_REF: Desc = {1: ("name", "string", None)}
OBJECT_REF: Desc = {
    1: ("kind", "string", None),
    2: ("namespace", "string", None),
    3: ("name", "string", None),
    4: ("uid", "string", None),
    5: ("apiVersion", "string", None),
}
KINDS: dict[tuple[str, str], Desc] = {
    ("v1", "ConfigMap"): {
        1: ("metadata", "msg", OBJECT_META),
        2: ("data", "map_ss", None),
        3: ("binaryData", "map_sb", None),
        4: ("immutable", "bool", None),
    },
    ("v1", "Secret"): {
        1: ("metadata", "msg", OBJECT_META),
        2: ("data", "map_sb", None),
        3: ("type", "string", None),
        4: ("stringData", "map_ss", None),
        5: ("immutable", "bool", None),
    },
    ("v1", "Namespace"): {
        1: ("metadata", "msg", OBJECT_META),
        2: ("spec", "msg", {1: ("finalizers", "rep_string", None)}),
    },
    ("v1", "ServiceAccount"): {
        1: ("metadata", "msg", OBJECT_META),
        2: ("secrets", "rep_msg", OBJECT_REF),
        3: ("imagePullSecrets", "rep_msg", LOCAL_REF),
        4: ("automountServiceAccountToken", "bool", None),
    },
    ("authentication.k8s.io/v1", "TokenRequest"): {
        1: ("metadata", "msg", OBJECT_META),
        2: (
            "spec",
            "msg",
            {
                1: ("audiences", "rep_string", None),
                4: ("expirationSeconds", "int", None),
                3: (
                    "boundObjectRef",
                    "msg",
                    {
                        1: ("kind", "string", None),
                        2: ("apiVersion", "string", None),
                        3: ("name", "string", None),
                        4: ("uid", "string", None),
                    },
                ),
            },
        ),
    },
}
ENVELOPE: Desc = {
    1: ("typeMeta", "msg", {1: ("apiVersion", "string", None), 2: ("kind", "string", None)}),
    2: ("raw", "bytes_raw", None),
    3: ("contentEncoding", "string", None),
    4: ("contentType", "string", None),
}


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    out = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value = buf[pos : pos + length]
            if len(value) != length:
                raise ProtobufError("truncated field")
            pos += length
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _message(buf: bytes, desc: Desc) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, _wire, value in _fields(buf):
        spec = desc.get(number)
        if spec is None:
            continue  # a field we do not model (e.g. creationTimestamp on input): ignored
        name, kind, sub = spec
        # Go marshals empty strings and zero numbers of plain fields; JSON omits them.
        if kind == "string":
            if value:
                obj[name] = bytes(value).decode()
        elif kind == "bytes_raw":
            obj[name] = bytes(value)
        elif kind == "int":
            if value:
                obj[name] = int(value)
        elif kind == "bool":
            obj[name] = bool(value)
        elif kind == "msg":
            obj[name] = _message(value, sub)
        elif kind == "rep_string":
            obj.setdefault(name, []).append(bytes(value).decode())
        elif kind == "rep_msg":
            obj.setdefault(name, []).append(_message(value, sub))
        elif kind in ("map_ss", "map_sb"):
            entry = {n: v for n, _w, v in _fields(value)}
            key = bytes(entry.get(1, b"")).decode()
            raw = bytes(entry.get(2, b""))
            obj.setdefault(name, {})[key] = (
                raw.decode() if kind == "map_ss" else base64.b64encode(raw).decode()
            )
        elif kind == "time":
            t = _message(value, TIME)
            obj[name] = datetime.fromtimestamp(t.get("seconds", 0), UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
    return obj


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded object as the JSON-shaped dict the rest of the server handles."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic number")
    envelope = _message(body[len(MAGIC) :], ENVELOPE)
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    desc = KINDS.get((api_version, kind))
    if desc is None:
        raise ProtobufError(f"protobuf bodies of kind {api_version}/{kind} are not supported")
    obj = _message(envelope.get("raw", b""), desc)
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj
