"""Fault run: 200 prompts from 40 users through real processes while faults are injected, then
how long each fault stalled the service and whether anything was lost or sent twice.

    python bench/fault_run.py                 # about 2 minutes on 2 cores
    python bench/fault_run.py --set KAFKA_SESSION_TIMEOUT_MS=6000
    python bench/fault_run.py --prompts 100 --users 20

On this machine, loopback only: a Kafka broker of its own (tools/kafka_broker.py, restartable),
moto's S3 server over HTTP (the bot reaches it through a proxy that can refuse connections), the
strict fake Bot API server, one bot and two worker processes of the real app with the fake
generator (tests/faults/rig.py). Prompts arrive at a steady rate; in turn: a worker killed
(SIGKILL) and replaced by one with a new WORKER_ID; the bot killed and restarted; the broker
stopped for 8 s; the object store refusing the bot for 6 s. For each fault it prints the time from
the fault's end to the next picture delivered, and at the end the totals: prompts answered,
lost, sent twice, statuses left, the busiest second of Bot API calls.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fakes.telegram import FakeBotAPI  # noqa: E402
from tests.faults.rig import Rig  # noqa: E402
from tests.fixtures.kafka import RestartableBroker  # noqa: E402
from tests.fixtures.s3 import MotoS3Server  # noqa: E402


async def next_picture_after(rig: Rig, since: float, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        later = [t for t in rig.picture_times() if t > since]
        if later:
            return later[0] - since
        await asyncio.sleep(0.05)
    return float("inf")


async def run(prompts: int, users: int, folder: Path, interval_s: float, settings: dict[str, str]) -> int:
    broker = RestartableBroker(folder / "kafka")
    await broker.astart()
    s3 = MotoS3Server()
    s3.start()
    tg = FakeBotAPI()
    await tg.start()
    rig = await Rig(bootstrap=broker.bootstrap, s3_url=s3.url, telegram=tg, folder=folder / "rig", **settings).start()
    recoveries: list[tuple[str, float]] = []
    fault_ends: list[tuple[str, float]] = []
    try:
        workers = [await rig.proc("worker", f"worker-{i}").start() for i in (1, 2)]
        bot = await rig.proc("bot", "bot-1").start()
        await asyncio.gather(bot.wait_ready(), *(w.wait_ready() for w in workers))
        print(f"started: broker, S3, bot, 2 workers; {prompts} prompts from {users} users")

        async def traffic() -> None:
            for i in range(prompts):
                rig.send(7000 + i % users, f"a fault run picture {i}")
                await asyncio.sleep(interval_s)

        sending = asyncio.create_task(traffic())
        await asyncio.sleep(8)

        await workers[0].kill()  # fault 1: a worker dies; a replacement with a new id
        replacement = await rig.proc("worker", "worker-3").start()
        await replacement.wait_ready()
        end = time.monotonic()
        recoveries.append(("worker killed, replaced (new WORKER_ID)", await next_picture_after(rig, end)))
        fault_ends.append((recoveries[-1][0], end))
        await asyncio.sleep(6)

        await bot.kill()  # fault 2: the bot dies and comes back
        bot = await rig.proc("bot", "bot-1").start()
        await bot.wait_ready()
        end = time.monotonic()
        recoveries.append(("bot killed, restarted", await next_picture_after(rig, end)))
        fault_ends.append((recoveries[-1][0], end))
        await asyncio.sleep(6)

        await broker.astop()  # fault 3: the broker goes for 8 s
        await asyncio.sleep(8)
        await broker.astart()
        end = time.monotonic()
        recoveries.append(("broker stopped 8 s, started", await next_picture_after(rig, end)))
        fault_ends.append((recoveries[-1][0], end))
        await asyncio.sleep(6)

        await rig.s3_proxy.refuse()  # fault 4: the object store refuses the bot for 6 s
        await asyncio.sleep(6)
        await rig.s3_proxy.accept()
        end = time.monotonic()
        recoveries.append(("storage refused the bot 6 s, back", await next_picture_after(rig, end)))
        fault_ends.append((recoveries[-1][0], end))

        await sending
        try:
            got = await rig.wait_settled(180)
        except AssertionError as exc:
            print(f"NOT SETTLED: {exc}")
            got = rig.outcomes()
        lost = [p for p in rig.prompts if not got.get(p)]
        twice = {p: v for p, v in got.items() if len(v) > 1}
        failures = sum(v.count("failure") for v in got.values())
        print("\n| fault | time from its end to the next picture |\n|---|---|")
        for name, seconds in recoveries:
            print(f"| {name} | {seconds:.1f} s |")
        answered = rig.answered_at()
        print("\n| fault | slowest answer to a prompt sent within 3 s after its end |\n|---|---|")
        for name, end in fault_ends:
            waits = [answered[p] - t for p, t in rig.sent_at.items() if end <= t < end + 3 and p in answered]
            print(f"| {name} | {max(waits, default=float('nan')):.1f} s ({len(waits)} prompts) |")
        times = rig.picture_times()
        longest = max((b - a for a, b in pairwise(times)), default=0.0)
        print(f"\nlongest pause between two pictures delivered, over the whole run: {longest:.1f} s")
        print(
            f"prompts {len(rig.prompts)}; answered {len(got)} ({failures} honest failures); "
            f"lost {len(lost)}; sent twice {len(twice)}; statuses left {len(rig.left_statuses())}; "
            f"busiest second {rig.busiest_second()} Bot API calls"
        )
        return 0 if not lost and not twice else 1
    finally:
        await rig.close()
        await tg.stop()
        s3.stop()
        await broker.astop()


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto: one line per request otherwise
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between prompts")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every process, e.g. KAFKA_SESSION_TIMEOUT_MS=6000",
    )
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    with tempfile.TemporaryDirectory(prefix="p2p-faults-") as tmp:
        return asyncio.run(run(args.prompts, args.users, Path(tmp), args.interval, settings))


if __name__ == "__main__":
    sys.exit(main())
