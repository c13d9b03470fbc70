"""`--stdin` commands: split reads, batching, attributes, bad lines, end of input."""

from __future__ import annotations

import asyncio

from bgp.context import AFI_IPV4, AFI_IPV6
from bgp.packing import RouteAttrs, prefix_key
from bgp.speak_cli import STDIN_LINES_PER_TURN, CommandReader
from bgp.speaker import Speaker


async def feed(
    chunks: list[bytes], base: RouteAttrs = RouteAttrs()
) -> tuple[Speaker, CommandReader]:
    speaker = Speaker(64512, "192.0.2.1")
    done = asyncio.Event()
    reader = CommandReader(speaker, base, done)
    for chunk in chunks:
        reader.data_received(chunk)
    reader.eof_received()
    async with asyncio.timeout(10):
        await done.wait()
    return speaker, reader


def attrs_of(speaker: Speaker, text: str) -> RouteAttrs | None:
    afi, key = prefix_key(text)
    return speaker.rib.lookup("any:179", afi, key)


async def test_commands_split_across_reads() -> None:
    data = (
        b"announce 203.0.113.1/32\n"
        b"announce 203.0.113.2 community 65000:2 large-community 1:2:3 local-pref 200 med 7\n"
        b"# a comment\n\n"
        b"announce 2001:db8:200::1/128\n"
        b"withdraw 203.0.113.1/32\n"
        b"announce 203.0.113.3"  # no final newline
    )
    speaker, reader = await feed([data[i : i + 7] for i in range(0, len(data), 7)])
    assert attrs_of(speaker, "203.0.113.1/32") is None
    a2 = attrs_of(speaker, "203.0.113.2/32")
    assert a2 == RouteAttrs(((65000 << 16) | 2,), ((1, 2, 3),), 200, 7)
    assert attrs_of(speaker, "2001:db8:200::1/128") == RouteAttrs()
    assert attrs_of(speaker, "203.0.113.3/32") == RouteAttrs()
    assert (reader.commands, reader.errors) == (5, 0)


async def test_bad_lines_are_counted_and_skipped() -> None:
    speaker, reader = await feed(
        [
            b"announce 203.0.113.1/24\n",  # host bits
            b"announce\n",
            b"withdraw 203.0.113.1 extra\n",
            b"frobnicate 203.0.113.1\n",
            b"announce 203.0.113.9 community nope\n",
            b"announce 203.0.113.10\n",
        ]
    )
    assert (reader.commands, reader.errors) == (1, 5)
    assert attrs_of(speaker, "203.0.113.10/32") is not None


async def test_command_line_attributes_are_the_base() -> None:
    base = RouteAttrs(communities=(1,), local_pref=50)
    speaker, _ = await feed(
        [b"announce 203.0.113.1\nannounce 203.0.113.2 community 0:2 local-pref 9\n"], base
    )
    assert attrs_of(speaker, "203.0.113.1/32") == base
    assert attrs_of(speaker, "203.0.113.2/32") == RouteAttrs((1, 2), (), 9)


async def test_a_large_burst_is_worked_through_in_bounded_turns() -> None:
    n = 3 * STDIN_LINES_PER_TURN + 5
    data = b"".join(b"announce 198.18.%d.%d\n" % (i >> 8, i & 255) for i in range(n))
    speaker = Speaker(64512, "192.0.2.1")
    done = asyncio.Event()
    reader = CommandReader(speaker, RouteAttrs(), done)
    reader.data_received(data)
    reader.eof_received()
    await asyncio.sleep(0)  # one event-loop turn: one batch, then others get the loop
    assert reader.commands == STDIN_LINES_PER_TURN
    async with asyncio.timeout(10):
        await done.wait()
    assert reader.commands == n
    assert len(speaker.rib.common[AFI_IPV4]) == n and not speaker.rib.common[AFI_IPV6]
