"""The protocol tools' stdlib JSON logs carry the same keys as the product's."""

from __future__ import annotations

import io
import json
import logging

from netkit import jsonlog


def test_json_lines_with_extras() -> None:
    out = io.StringIO()
    jsonlog.setup("info", stream=out)
    try:
        logging.getLogger("bgp.session").info("sessionEstablished", extra={"peer": "192.0.2.1"})
        logging.getLogger("bgp.session").debug("hidden")
        (line,) = out.getvalue().splitlines()
        rec = json.loads(line)
        assert list(rec)[:4] == ["ts", "level", "event", "logger"]
        assert rec["event"] == "sessionEstablished" and rec["peer"] == "192.0.2.1"
        assert rec["level"] == "info" and rec["logger"] == "bgp.session"
    finally:
        logging.getLogger().handlers.clear()
