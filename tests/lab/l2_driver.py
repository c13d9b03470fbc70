"""Drives `l2.announcer.Announcer` the way metallb_py's speaker will: repeated, level-triggered
`set_announcements` calls. Runs as a script inside a lab namespace; prints one JSON object per
step with the counters, so a test can see exactly when takeover bursts went out.

    python tests/lab/l2_driver.py IP [IP...]
"""

from __future__ import annotations

import asyncio
import json
import sys

from l2.announcer import Announcer, BurstConfig


def snapshot(step: str, ann: Announcer) -> None:
    c = ann.counters
    print(
        json.dumps(
            {
                "step": step,
                "gratuitousSent": dict(c.gratuitous_sent),
                "responsesSent": dict(c.responses_sent),
                "interfaces": ann.served_interfaces,
            }
        ),
        flush=True,
    )


async def main(ips: list[str]) -> None:
    ann = Announcer(burst=BurstConfig(count=2, interval=0.1))
    await ann.start()
    first, rest = ips[0], ips[1:]
    ann.set_announcements({first: None})
    await asyncio.sleep(0.5)
    snapshot("announced", ann)
    for _ in range(5):  # reconciles that change nothing must send nothing
        ann.set_announcements({first: None})
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    snapshot("reconciled", ann)
    ann.set_announcements({ip: None for ip in ips})  # one more service: only it bursts
    await asyncio.sleep(0.5)
    snapshot("added", ann)
    ann.set_announcements({ip: None for ip in rest})  # lost the first one
    await asyncio.sleep(0.3)
    snapshot("withdrawn", ann)
    await asyncio.to_thread(sys.stdin.readline)  # the test probes now, then lets us go on
    ann.set_announcements({ip: None for ip in ips})  # became its announcer again: burst again
    await asyncio.sleep(0.5)
    snapshot("reannounced", ann)
    await ann.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
