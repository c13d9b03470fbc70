"""Stdlib-only helpers shared by the protocol libraries (bgp, bfd, l2).

The protocol libraries may not import `metallb_py` (docs/architecture.md), yet their debugging
tools must log the same one-JSON-object-per-line format. What they share lives here, and here only.
"""
