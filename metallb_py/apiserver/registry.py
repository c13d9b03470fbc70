"""Which resources are served right now: built-ins plus whatever established CRDs add."""

from __future__ import annotations

from metallb_py.apiserver.resources import GROUP_ORDER, Resource, builtin_resources


class Registry:
    def __init__(self) -> None:
        self.by_gvr: dict[tuple[str, str, str], Resource] = {}
        # group -> versions in preference order
        self.group_versions: dict[str, list[str]] = {}
        self.generation = 0  # bumps on every change, for discovery/OpenAPI caches
        for r in builtin_resources():
            self.add(r)

    def add(self, r: Resource) -> None:
        self.by_gvr[(r.group, r.version, r.plural)] = r
        versions = self.group_versions.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
        self.generation += 1

    def set_versions(self, group: str, versions: list[str]) -> None:
        """A CRD's served versions in priority order (the storage version first)."""
        self.group_versions[group] = versions
        self.generation += 1

    def remove_crd(self, crd_name: str) -> list[Resource]:
        gone = [r for r in self.by_gvr.values() if r.crd_name == crd_name]
        for r in gone:
            del self.by_gvr[(r.group, r.version, r.plural)]
        for r in gone:
            still = [x.version for x in self.by_gvr.values() if x.group == r.group]
            if still:
                self.group_versions[r.group] = [
                    v for v in self.group_versions.get(r.group, []) if v in still
                ]
            else:
                self.group_versions.pop(r.group, None)
        self.generation += 1
        return gone

    def get(self, group: str, version: str, plural: str) -> Resource | None:
        return self.by_gvr.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> Resource | None:
        for r in self.by_gvr.values():
            if r.group == group and r.version == version and r.kind == kind:
                return r
        return None

    def any_version(self, group: str, kind: str) -> Resource | None:
        for r in self.by_gvr.values():
            if r.group == group and r.kind == kind:
                return r
        return None

    def resources(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.by_gvr.values() if r.group == group and r.version == version]

    def groups(self) -> list[str]:
        known = [g for g in GROUP_ORDER if g in self.group_versions]
        return known + sorted(g for g in self.group_versions if g not in GROUP_ORDER)

    def preferred(self, group: str) -> str:
        return self.group_versions[group][0]

    def versions_of(self, r: Resource) -> list[Resource]:
        return [x for x in self.by_gvr.values() if x.store_key == r.store_key]
