"""CEL `x-kubernetes-validations` of CRD schemas, evaluated with cel-python.

Each rule runs with `self` bound to the value at its schema node and, on updates, `oldSelf` bound
to the correlated old value (same path; list-type=map items by key). Transition rules (those using
oldSelf) are skipped on create and for values without an old counterpart, as the real server does.
The Kubernetes CEL library functions our CRDs use (IP/CIDR, URL, string helpers) are provided.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlparse

import celpy
from celpy import celtypes

from metallb_py.apiserver.errors import FieldError
from metallb_py.objects import JSON


def _ip(s: Any) -> Any:
    text = str(s)
    if "%" in text:
        raise ValueError(f"IP address with zone value is not allowed: {text}")
    ipaddress.ip_address(text)
    return celtypes.StringType(text)


def _is_ip(s: Any) -> celtypes.BoolType:
    try:
        _ip(s)
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _cidr(s: Any) -> Any:
    ipaddress.ip_network(str(s), strict=False)
    return celtypes.StringType(str(s))


def _is_cidr(s: Any) -> celtypes.BoolType:
    try:
        ipaddress.ip_network(str(s), strict=False)
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType("/" in str(s))


def _family(s: Any) -> celtypes.IntType:
    text = str(s)
    addr = (
        ipaddress.ip_network(text, strict=False).network_address
        if "/" in text
        else (ipaddress.ip_address(text))
    )
    return celtypes.IntType(addr.version)


def _contains_ip(c: Any, ip: Any) -> celtypes.BoolType:
    return celtypes.BoolType(
        ipaddress.ip_address(str(ip)) in ipaddress.ip_network(str(c), strict=False)
    )


def _contains_cidr(c: Any, other: Any) -> celtypes.BoolType:
    outer = ipaddress.ip_network(str(c), strict=False)
    inner = ipaddress.ip_network(str(other), strict=False)
    return celtypes.BoolType(inner.version == outer.version and inner.subnet_of(outer))  # type: ignore[arg-type]


def _prefix_length(c: Any) -> celtypes.IntType:
    return celtypes.IntType(ipaddress.ip_network(str(c), strict=False).prefixlen)


def _addr_pred(name: str) -> Any:
    def pred(s: Any) -> celtypes.BoolType:
        return celtypes.BoolType(bool(getattr(ipaddress.ip_address(str(s)), name)))

    return pred


def _is_url(s: Any) -> celtypes.BoolType:
    u = urlparse(str(s))
    return celtypes.BoolType(bool(u.scheme and (u.netloc or u.path)))


def _split(s: Any, sep: Any, n: Any = None) -> celtypes.ListType:
    parts = str(s).split(str(sep)) if n is None else str(s).split(str(sep), int(n) - 1)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _join(lst: Any, sep: Any = "") -> celtypes.StringType:
    return celtypes.StringType(str(sep).join(str(x) for x in lst))


def _index_of(s: Any, sub: Any) -> celtypes.IntType:
    return celtypes.IntType(str(s).find(str(sub)))


def _replace(s: Any, old: Any, new: Any, n: Any = None) -> celtypes.StringType:
    count = -1 if n is None else int(n)
    return celtypes.StringType(str(s).replace(str(old), str(new), count))


def _matches(s: Any, pattern: Any) -> celtypes.BoolType:
    return celtypes.BoolType(re.search(str(pattern), str(s)) is not None)


FUNCTIONS: dict[str, Any] = {
    "ip": _ip,
    "isIP": _is_ip,
    "cidr": _cidr,
    "isCIDR": _is_cidr,
    "family": _family,
    "containsIP": _contains_ip,
    "containsCIDR": _contains_cidr,
    "prefixLength": _prefix_length,
    "isLoopback": _addr_pred("is_loopback"),
    "isUnspecified": _addr_pred("is_unspecified"),
    "isLinkLocalMulticast": lambda s: celtypes.BoolType(
        ipaddress.ip_address(str(s)).is_multicast and ipaddress.ip_address(str(s)).is_link_local
    ),
    "isLinkLocalUnicast": lambda s: celtypes.BoolType(
        ipaddress.ip_address(str(s)).is_link_local and not ipaddress.ip_address(str(s)).is_multicast
    ),
    "isGlobalUnicast": lambda s: celtypes.BoolType(
        not ipaddress.ip_address(str(s)).is_multicast
        and not ipaddress.ip_address(str(s)).is_loopback
        and not ipaddress.ip_address(str(s)).is_link_local
        and not ipaddress.ip_address(str(s)).is_unspecified
    ),
    "isURL": _is_url,
    "url": lambda s: celtypes.StringType(str(s)),
    "lowerAscii": lambda s: celtypes.StringType(str(s).lower()),
    "upperAscii": lambda s: celtypes.StringType(str(s).upper()),
    "trim": lambda s: celtypes.StringType(str(s).strip()),
    "split": _split,
    "join": _join,
    "indexOf": _index_of,
    "replace": _replace,
    "matches": _matches,
}


_RULES: dict[int, tuple[JSON, bool]] = {}


def _has_rules(schema: JSON) -> bool:
    """Whether any node of the schema carries x-kubernetes-validations (cached)."""
    hit = _RULES.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    found = "x-kubernetes-validations" in json.dumps(schema)
    _RULES[id(schema)] = (schema, found)
    return found


class CelValidator:
    def __init__(self) -> None:
        self._env: Any = None  # built on first use: the CEL grammar takes a second to load
        self._programs: dict[str, Any] = {}

    @property
    def env(self) -> Any:
        if self._env is None:
            self._env = celpy.Environment()
        return self._env

    def _program(self, rule: str) -> Any:
        prog = self._programs.get(rule)
        if prog is None:
            ast = self.env.compile(rule)
            prog = self.env.program(ast, functions=FUNCTIONS)
            self._programs[rule] = prog
        return prog

    def check_rule(self, rule: str) -> str | None:
        """A compile error for a rule, or None (used when a CRD is stored)."""
        try:
            self._program(rule)
        except Exception as exc:
            return str(exc).splitlines()[0]
        return None

    def validate(self, schema: JSON, obj: JSON, old: JSON | None) -> list[FieldError]:
        if not _has_rules(schema):
            return []
        errs: list[FieldError] = []
        self._walk(schema, obj, old, "", errs, old is not None)
        return errs

    def _walk(
        self, schema: JSON, value: Any, old: Any, path: str, errs: list[FieldError], has_old: bool
    ) -> None:
        if value is None:
            return
        for rule in schema.get("x-kubernetes-validations") or []:
            self._eval(rule, value, old, path, errs, has_old)
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            addl = schema.get("additionalProperties")
            for k, v in value.items():
                sub = props.get(k) if k in props else (addl if isinstance(addl, dict) else None)
                if sub is None or (path == "" and k == "metadata"):
                    continue
                o = old.get(k) if has_old and isinstance(old, dict) else None
                self._walk(
                    sub,
                    v,
                    o,
                    f"{path}.{k}" if path else k,
                    errs,
                    has_old and isinstance(old, dict) and k in old,
                )
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            items = schema["items"]
            keys = schema.get("x-kubernetes-list-map-keys") or []
            olds: dict[tuple[Any, ...], Any] = {}
            if has_old and isinstance(old, list) and schema.get("x-kubernetes-list-type") == "map":
                olds = {tuple(o.get(k) for k in keys): o for o in old if isinstance(o, dict)}
            for i, v in enumerate(value):
                key = tuple(v.get(k) for k in keys) if isinstance(v, dict) and keys else None
                o = olds.get(key) if key is not None else None
                self._walk(items, v, o, f"{path}[{i}]", errs, o is not None)

    def _eval(
        self, rule: JSON, value: Any, old: Any, path: str, errs: list[FieldError], has_old: bool
    ) -> None:
        text = rule.get("rule", "")
        transition = "oldSelf" in text
        if transition and not has_old and not rule.get("optionalOldSelf"):
            return
        field = path
        if rule.get("fieldPath"):
            field = (path + rule["fieldPath"]) if path else rule["fieldPath"].lstrip(".")
        shown = (
            "object" if isinstance(value, dict) else ("array" if isinstance(value, list) else value)
        )
        try:
            act: dict[str, Any] = {"self": celpy.json_to_cel(value)}
            if transition:
                act["oldSelf"] = celpy.json_to_cel(old)
            result = self._program(text).evaluate(act)
        except Exception as exc:
            errs.append(
                FieldError(
                    field or "<nil>",
                    "Invalid value",
                    f"{str(exc).splitlines()[0][:200]} evaluating rule: {text}",
                    shown,
                )
            )
            return
        if isinstance(result, Exception) or not isinstance(result, celtypes.BoolType):
            errs.append(
                FieldError(
                    field or "<nil>",
                    "Invalid value",
                    f"rule evaluation error: {str(result)[:200]}: {text}",
                    shown,
                )
            )
            return
        if bool(result):
            return
        message = rule.get("message") or f"failed rule: {text}"
        if rule.get("messageExpression"):
            try:
                act = {"self": celpy.json_to_cel(value)}
                if transition:
                    act["oldSelf"] = celpy.json_to_cel(old)
                m = self._program(rule["messageExpression"]).evaluate(act)
                if isinstance(m, celtypes.StringType) and str(m).strip():
                    message = str(m)
            except Exception:
                pass
        kind = {
            "FieldValueRequired": "Required value",
            "FieldValueForbidden": "Forbidden",
            "FieldValueDuplicate": "Duplicate value",
        }.get(rule.get("reason", ""), "Invalid value")
        errs.append(FieldError(field or "<nil>", kind, message, shown))
