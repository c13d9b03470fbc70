"""Who is asking (bearer tokens, client certificates, ServiceAccount tokens) and whether the
stored RBAC objects let them do it.

ServiceAccount tokens are HMAC-signed statements of (namespace, name, uid); they stay valid while
that ServiceAccount exists with that uid, and survive a restart when the key is kept with --data.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field

from metallb_py.apiserver.store import Store
from metallb_py.objects import JSON

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict, hash=False, compare=False)

    def info(self) -> JSON:
        out: JSON = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        return out

    @property
    def is_admin(self) -> bool:
        return MASTERS in self.groups


ANONYMOUS_ADMIN = User("system:anonymous", ("system:unauthenticated", MASTERS))
SA_PREFIX = "system:serviceaccount:"


def load_token_file(path: str) -> dict[str, User]:
    """kube-apiserver's static token file: token,user,uid[,"group1,group2"]."""
    tokens: dict[str, User] = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise ValueError(f"{path}: a line needs token,user,uid[,groups]")
            groups = (
                tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
            )
            tokens[row[0].strip()] = User(row[1].strip(), (*groups, AUTHENTICATED), row[2].strip())
    return tokens


class Authenticator:
    def __init__(self, store: Store, signing_key: bytes, static: dict[str, User]) -> None:
        self.store = store
        self.key = signing_key
        self.static = static

    def sa_token(self, ns: str, name: str, uid: str, ttl: int = 0) -> tuple[str, int]:
        exp = int(time.time()) + ttl if ttl else 0
        claims = json.dumps(
            {"ns": ns, "name": name, "uid": uid, "exp": exp, "n": secrets.token_hex(4)},
            separators=(",", ":"),
        ).encode()
        body = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
        sig = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()
        return f"mlbsa.{body}.{sig}", exp

    def from_token(self, token: str) -> User | None:
        user = self.static.get(token)
        if user is not None:
            return user
        if not token.startswith("mlbsa."):
            return None
        try:
            _, body, sig = token.split(".")
        except ValueError:
            return None
        want = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if claims.get("exp") and claims["exp"] < time.time():
            return None
        sa = self.store.table("serviceaccounts").get(claims["ns"], claims["name"])
        if sa is None or sa.obj["metadata"].get("uid") != claims["uid"]:
            return None
        return User(
            f"{SA_PREFIX}{claims['ns']}:{claims['name']}",
            ("system:serviceaccounts", f"system:serviceaccounts:{claims['ns']}", AUTHENTICATED),
            claims["uid"],
        )

    @staticmethod
    def from_cert(peercert: JSON | None) -> User | None:
        if not peercert:
            return None
        cn, groups = "", []
        for rdn in peercert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    cn = value
                elif key == "organizationName":
                    groups.append(value)
        return User(cn, (*groups, AUTHENTICATED)) if cn else None


# -- RBAC ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attributes:
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    path: str = ""
    resource_request: bool = True


def _subject_matches(subject: JSON, user: User) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name") == user.name)
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        return user.name == f"{SA_PREFIX}{subject.get('namespace', '')}:{subject.get('name')}"
    return False


def _rule_allows(rule: JSON, a: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and a.verb not in verbs:
        return False
    if not a.resource_request:
        urls = rule.get("nonResourceURLs") or []
        return any(
            u == "*" or u == a.path or (u.endswith("*") and a.path.startswith(u[:-1])) for u in urls
        )
    groups = rule.get("apiGroups") or []
    if "*" not in groups and a.group not in groups:
        return False
    resources = rule.get("resources") or []
    combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    if not any(
        r == "*"
        or r == combined
        or (a.subresource and r == f"*/{a.subresource}")
        or (not a.subresource and r == a.resource)
        or r == f"{a.resource}/*"
        for r in resources
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


class Authorizer:
    """RBAC over the stored Role/ClusterRole/RoleBinding/ClusterRoleBinding objects."""

    # Discovery is open to every authenticated user, as the default system:discovery role does.
    DISCOVERY = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")

    def __init__(self, store: Store) -> None:
        self.store = store

    def _role_rules(self, kind: str, name: str, ns: str) -> list[JSON]:
        if kind == "ClusterRole":
            entry = self.store.table("clusterroles.rbac.authorization.k8s.io").get("", name)
        else:
            entry = self.store.table("roles.rbac.authorization.k8s.io").get(ns, name)
        if entry is None:
            return []
        rules: list[JSON] = entry.obj.get("rules") or []
        return rules

    def allowed(self, user: User, a: Attributes) -> bool:
        if user.is_admin:
            return True
        if not a.resource_request and any(
            a.path == p or a.path.startswith(p + "/") for p in self.DISCOVERY
        ):
            return AUTHENTICATED in user.groups
        for b in self.store.table("clusterrolebindings.rbac.authorization.k8s.io").entries():
            if any(_subject_matches(s, user) for s in b.obj.get("subjects") or []):
                ref = b.obj.get("roleRef") or {}
                if any(
                    _rule_allows(r, a)
                    for r in self._role_rules("ClusterRole", ref.get("name", ""), "")
                ):
                    return True
        if a.namespace:
            for b in self.store.table("rolebindings.rbac.authorization.k8s.io").entries(
                a.namespace
            ):
                if any(_subject_matches(s, user) for s in b.obj.get("subjects") or []):
                    ref = b.obj.get("roleRef") or {}
                    rules = self._role_rules(ref.get("kind", ""), ref.get("name", ""), a.namespace)
                    if any(_rule_allows(r, a) for r in rules):
                        return True
        return False


def new_key() -> bytes:
    return secrets.token_bytes(32)
