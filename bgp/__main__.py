"""`python -m bgp decode ...` and `python -m bgp speak ...`."""

from __future__ import annotations

import importlib
import sys

USAGE = """usage: python -m bgp {decode,speak} ...

  decode   print BGP messages given as hex or raw bytes as JSON (python -m bgp decode -h)
  speak    announce prefixes to BGP peers (python -m bgp speak -h)
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        (sys.stdout if args else sys.stderr).write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "decode":
        from bgp.decode_cli import main as decode_main

        return decode_main(rest)
    if command == "speak":
        try:
            module = importlib.import_module("bgp.speak_cli")
        except ImportError:
            module = None
        speak_main = getattr(module, "main", None)
        if speak_main is None:
            print("bgp speak: not implemented yet", file=sys.stderr)
            return 2
        return int(speak_main(rest) or 0)
    sys.stderr.write(f"python -m bgp: unknown command {command!r}\n{USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
