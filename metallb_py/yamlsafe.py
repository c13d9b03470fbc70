"""One YAML loader for every input an untrusted user can write: bounded before it is built.

A few hundred bytes of YAML can alias themselves into billions of nodes ("billion laughs"), nest
deeper than Python's recursion limit, or spell an integer too long to convert. PyYAML shares an
aliased node instead of copying it, so composing such a document is cheap: the cost comes later,
when something walks, copies or prints the result. This loader therefore counts, while composing,
how many nodes the document will have once every alias is expanded, how deep it nests and how
long its integers are, and refuses the document at the first node past a limit. The error names
the line and column, the object (`kind` and `metadata.name` when they came first) and the field.

The API server (request bodies), `metallb-py config validate` and `config convert` all read YAML
through here, so the limits below hold everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A Kubernetes request body is at most 3 MiB; so is one YAML input here.
MAX_BYTES = 3 * 1024 * 1024
# Nodes of a whole stream with every alias expanded. A 3 MiB configuration without aliases has
# about 300 000; a billion-laughs bomb has billions.
MAX_NODES = 1_000_000
# Characters of all scalars with every alias expanded: one long string aliased many times stays
# under the node limit but not under this one.
MAX_CHARS = 8 * 1024 * 1024
# Nesting of collections. MetalLB's objects nest about 10 deep and CRD schemas about 40; the
# checks that walk an object recursively stay far below Python's recursion limit.
MAX_DEPTH = 100
# Characters of an integer literal: int64 and uint64 need 20, a 0b-spelled one 66. Longer ones
# are refused before Python converts them (which takes quadratic time and fails past 4300 digits).
MAX_INT_CHARS = 100

INT_TAG = "tag:yaml.org,2002:int"


class YAMLLimitError(yaml.MarkedYAMLError):
    """A document past one of the limits above; `problem` says which, where and in what object."""


def _step(parent: Node | None, index: Any) -> str:
    if isinstance(parent, SequenceNode) and isinstance(index, int):
        return f"[{index}]"
    if isinstance(parent, MappingNode):
        if index is None:
            return "<key>"
        if isinstance(index, ScalarNode):
            text = str(index.value)
            return text if len(text) <= 40 else text[:37] + "..."
        return "<key>"
    return ""


class _BoundedComposer:
    """Mixin for a PyYAML Loader: the limit checks, done in `compose_node`."""

    max_nodes: int = MAX_NODES
    max_chars: int = MAX_CHARS
    max_depth: int = MAX_DEPTH
    max_int_chars: int = MAX_INT_CHARS

    def _bounded_reset(self) -> None:
        self._path: list[str] = []
        self._open_anchors: set[str] = set()
        self._sizes: dict[int, int] = {}
        self._chars: dict[int, int] = {}
        self._spent = 0  # expanded nodes of the documents already composed
        self._spent_chars = 0
        self._kind = ""
        self._name = ""

    def _where(self) -> str:
        obj = f"{self._kind} {self._name!r}" if self._kind and self._name else self._kind
        field = ""
        for step in self._path[:12]:
            field += step if step.startswith("[") or not field else "." + step
        if len(self._path) > 12:
            field += f"... ({len(self._path)} levels)"
        parts = [p for p in (obj, field) if p]
        return ": ".join(parts)

    def _refuse(self, what: str, mark: Any) -> YAMLLimitError:
        where = self._where()
        return YAMLLimitError(problem=f"{where}: {what}" if where else what, problem_mark=mark)

    def compose_document(self) -> Node:
        self._kind = self._name = ""
        node: Node = super().compose_document()  # type: ignore[misc]
        self._spent += self._sizes.get(id(node), 1)
        self._spent_chars += self._chars.get(id(node), 0)
        self._sizes.clear()
        self._chars.clear()
        return node

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()  # type: ignore[attr-defined]
        if isinstance(event, AliasEvent):
            if event.anchor in self._open_anchors:
                raise self._refuse(
                    f"recursive alias *{event.anchor} (an anchor used inside itself)",
                    event.start_mark,
                )
            return super().compose_node(parent, index)  # type: ignore[misc]
        nested = parent is not None
        if nested:
            self._path.append(_step(parent, index))
        if len(self._path) >= self.max_depth:
            raise self._refuse(f"nested deeper than {self.max_depth} levels", event.start_mark)
        anchor = event.anchor
        if anchor is not None:
            self._open_anchors.add(anchor)
        node: Node = super().compose_node(parent, index)  # type: ignore[misc]
        if anchor is not None:
            self._open_anchors.discard(anchor)
        self._account(node)
        if nested:
            self._path.pop()
        return node

    def _account(self, node: Node) -> None:
        sizes = self._sizes
        if isinstance(node, ScalarNode):
            if node.tag == INT_TAG and len(node.value) > self.max_int_chars:
                raise self._refuse(
                    f"integer of {len(node.value)} characters (at most {self.max_int_chars})",
                    node.start_mark,
                )
            if len(self._path) == 1 and self._path[0] == "kind":
                self._kind = str(node.value)[:63]
            elif self._path == ["metadata", "name"]:
                self._name = str(node.value)[:253]
            sizes[id(node)] = 1
            self._chars[id(node)] = len(node.value)
            return
        chars = self._chars
        total, text = 1, 0
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        for child in children:
            total += sizes.get(id(child), 1)
            text += chars.get(id(child), 0)
        sizes[id(node)] = total
        chars[id(node)] = text
        if self._spent + total > self.max_nodes:
            raise self._refuse(
                f"excessive aliasing: the document expands to more than {self.max_nodes} "
                "nodes (a YAML alias bomb?)",
                node.start_mark,
            )
        if self._spent_chars + text > self.max_chars:
            raise self._refuse(
                f"excessive aliasing: the document expands to more than {self.max_chars} "
                "characters (a YAML alias bomb?)",
                node.start_mark,
            )


_LOADERS: dict[str, type[yaml.SafeLoader]] = {}


def _bounded(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    key = f"{base.__module__}.{base.__qualname__}"
    if key not in _LOADERS:
        _LOADERS[key] = type(f"Bounded{base.__name__}", (_BoundedComposer, base), {})
    return _LOADERS[key]


@contextlib.contextmanager
def _loader(
    text: str | bytes,
    base: type[yaml.SafeLoader],
    max_bytes: int,
    max_nodes: int,
    max_depth: int,
) -> Iterator[yaml.SafeLoader]:
    """A bounded loader over `text`, disposed of afterwards; a RecursionError while loading
    (a last resort: max_depth should come first) becomes a YAMLLimitError."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise YAMLLimitError(problem=f"input of {size} bytes is over the limit of {max_bytes}")
    loader = _bounded(base)(text)
    bounded: Any = loader
    bounded._bounded_reset()
    bounded.max_nodes, bounded.max_depth = max_nodes, max_depth
    try:
        yield loader
    except RecursionError:
        raise YAMLLimitError(problem="document nested too deeply") from None
    finally:
        loader.dispose()


def load_all(
    text: str | bytes,
    *,
    base: type[yaml.SafeLoader] = yaml.SafeLoader,
    max_bytes: int = MAX_BYTES,
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
) -> list[Any]:
    """Every document of a YAML stream, read with `base` (a SafeLoader subclass) within the
    limits. Raises YAMLLimitError past a limit, another yaml.YAMLError for invalid YAML."""
    with _loader(text, base, max_bytes, max_nodes, max_depth) as loader:
        docs = []
        while loader.check_data():
            docs.append(loader.get_data())
        return docs


def load(
    text: str | bytes,
    *,
    base: type[yaml.SafeLoader] = yaml.SafeLoader,
    max_bytes: int = MAX_BYTES,
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """The single document of `text` (None when empty), as `load_all` reads it."""
    with _loader(text, base, max_bytes, max_nodes, max_depth) as loader:
        return loader.get_single_data()
