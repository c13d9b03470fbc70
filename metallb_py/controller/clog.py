"""The controller's structlog logger, bound on first use.

structlog fixes a logger's configuration when it is bound, and component modules are imported
before the CLI configures logging; binding lazily keeps every line in the JSON format."""

from __future__ import annotations

from typing import Any

from metallb_py.log import get_logger


class LazyLogger:
    def __init__(self, name: str) -> None:
        self._name = name
        self._real: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._real is None:
            self._real = get_logger(self._name)
        return getattr(self._real, attr)


log = LazyLogger("controller")
