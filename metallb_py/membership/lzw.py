"""LZW as Go's compress/lzw writes and reads it with order LSB and literal width 8.

memberlist compresses packets and streams this way (`compressMsg`), so a Go member only
understands our compressed payloads if the code stream is identical in its details: the clear
code the writer emits first, a code width that grows from 9 bits when the next free code reaches
a power of two, a clear code (and a fresh table) when the writer's next code would be 4095, and
the end code 257. The reader mirrors Go's reader: codes above the next free one are invalid, and
input that ends without the end code is an error (Go reports io.ErrUnexpectedEOF).
"""

from __future__ import annotations

import itertools

CLEAR = 256
EOF = 257
FIRST_FREE = 258
MAX_WIDTH = 12
# The writer resets once its next free code would reach this (Go's maxCode).
MAX_CODE = (1 << MAX_WIDTH) - 1
_FLUSH = 256  # a pseudo-literal no byte equals: ends the input in compress


class LZWError(ValueError):
    """Invalid, truncated or oversized compressed input."""


class _BitWriter:
    """Packs codes least-significant bit first, as Go's writeLSB does."""

    __slots__ = ("bits", "n_bits", "out")

    def __init__(self) -> None:
        self.bits = 0
        self.n_bits = 0
        self.out = bytearray()

    def write(self, code: int, width: int) -> None:
        self.bits |= code << self.n_bits
        self.n_bits += width
        while self.n_bits >= 8:
            self.out.append(self.bits & 0xFF)
            self.bits >>= 8
            self.n_bits -= 8

    def finish(self) -> bytes:
        if self.n_bits > 0:
            self.out.append(self.bits & 0xFF)
        return bytes(self.out)


def compress(data: bytes) -> bytes:
    """Compress `data` to the exact bytes Go's lzw.NewWriter(w, lzw.LSB, 8) produces."""
    out = _BitWriter()
    width = 9
    out.write(CLEAR, width)
    if data:  # Go's Write ignores empty input; Close then writes just the end code
        hi = EOF  # the last assigned code; the first entry gets hi + 1 = 258
        overflow = 1 << width
        table: dict[int, int] = {}
        code = data[0]
        # A trailing _FLUSH matches no entry (keys give the literal 9 bits), so the pending code
        # goes out by the same steps as every other: Go's Close writes it, then runs incHi. The
        # entry it adds is never looked up.
        for literal in itertools.chain(data[1:], (_FLUSH,)):
            key = (code << 9) | literal
            found = table.get(key)
            if found is not None:
                code = found
                continue
            out.write(code, width)
            code = literal
            hi += 1
            if hi == overflow:
                width += 1
                overflow <<= 1
            if hi == MAX_CODE:
                out.write(CLEAR, width)
                width = 9
                hi = EOF
                overflow = 1 << width
                table.clear()
                continue
            table[key] = hi
    out.write(EOF, width)
    return out.finish()


def decompress(data: bytes, max_size: int) -> bytes:
    """Decompress Go-LZW `data`; raise LZWError on bad codes, no end code, or > max_size out."""
    out = bytearray()
    entries: list[bytes] = [bytes([i]) for i in range(256)] + [b"", b""]
    width = 9
    hi = EOF
    overflow = 1 << width
    last: bytes | None = None  # the previous code's string; None right after a clear
    bits = 0
    n_bits = 0
    pos = 0
    size = len(data)
    while True:
        while n_bits < width:
            if pos >= size:
                raise LZWError("truncated: no end code")
            bits |= data[pos] << n_bits
            pos += 1
            n_bits += 8
        code = bits & ((1 << width) - 1)
        bits >>= width
        n_bits -= width
        if code == CLEAR:
            width = 9
            hi = EOF
            overflow = 1 << width
            last = None
            del entries[FIRST_FREE:]
            continue
        if code == EOF:
            return bytes(out)
        if code < CLEAR or code < hi:
            string = entries[code]
        elif code == hi and last is not None:
            string = last + last[:1]
        elif code == hi:
            # Only reachable once the table is full: hi stays at 4095, which is assigned.
            string = entries[code]
        else:
            raise LZWError(f"invalid code {code}")
        out += string
        if len(out) > max_size:
            raise LZWError(f"output over {max_size} bytes")
        if last is not None:
            entry = last + string[:1]
            if hi < len(entries):
                entries[hi] = entry
            else:
                entries.append(entry)
        last = string
        hi += 1
        if hi >= overflow:
            if width == MAX_WIDTH:
                # Table full: no new entries until the writer sends a clear code.
                last = None
                hi -= 1
            else:
                width += 1
                overflow = 1 << width
