"""Are the queue positions and waits the bot states true? A load run of the whole service on the
real Apache Kafka broker with the tiny Würstchen model (``GENERATOR=tiny``), through the real
aiogram stack against the strict fake Bot API.

    python bench/queue_wait_load.py                 # starts a broker unless KAFKA_BOOTSTRAP_SERVERS is set
    python bench/queue_wait_load.py --users 20 --warmup 2 --warmup-batch 8 --size 256 --steps 4,4

The service (``app.serve``, role all: bot and one worker in one process, Kafka queue, local-folder
storage, SQLite user store) starts on fresh topics and groups. ``--warmup`` users send a prompt
one after the other, then ``--warmup-batch`` users at once (so the bot has seen how long the worker
takes for one picture and for a batch, under the machine's load of the moment), then ``--users``
users send one prompt each, all at once. For every user it reads the position and wait stated in the first
status reply, and measures the actual wait: from sending the prompt to the picture arriving. It
prints the table of stated vs actual, the share within 2x, and checks that every user got exactly
one picture.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


import app  # noqa: E402
from config.bootstrap import Components  # noqa: E402
from config.settings import Settings  # noqa: E402
from tests.fakes.telegram import FakeBotAPI  # noqa: E402

_STATED = re.compile(r"position (\d+), (?:about (\d+) (s|min)|the wait is not known)")


@dataclass
class Row:
    user: int
    position: int
    stated_s: float | None
    actual_s: float
    photos: int

    @property
    def ratio(self) -> float | None:
        return None if self.stated_s is None or self.actual_s <= 0 else self.stated_s / self.actual_s

    @property
    def within_2x(self) -> bool:
        """The wait told is within 2x of the actual one, at the precision it was told with: "about
        3 s" is a figure rounded to the second (3 +- 0.5 s), "about 2 min" to the minute, so a stated
        wait counts when the range it stands for meets [actual / 2, 2 x actual]."""
        if self.stated_s is None or self.actual_s <= 0:
            return False
        half_unit = 30.0 if self.stated_s >= 60 else 0.5
        low, high = max(0.0, self.stated_s - half_unit), self.stated_s + half_unit
        return high >= self.actual_s / 2 and low <= 2 * self.actual_s


@dataclass
class Report:
    rows: list[Row]
    warmup_s: list[float] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def within_2x(self) -> float:
        return sum(r.within_2x for r in self.rows) / len(self.rows) if self.rows else 0.0

    def table(self) -> str:
        lines = [" user  position  stated (s)  actual (s)  stated/actual  photos"]
        for r in sorted(self.rows, key=lambda r: r.position):
            stated = "?" if r.stated_s is None else f"{r.stated_s:.0f}"
            ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
            lines.append(f"{r.user:>5}  {r.position:>8}  {stated:>10}  {r.actual_s:>10.1f}  {ratio:>13}  {r.photos:>6}")
        ratios = [r.ratio for r in self.rows if r.ratio is not None]
        lines.append(
            f"within 2x: {sum(r.within_2x for r in self.rows)}/{len(self.rows)} ({100 * self.within_2x:.0f} %); "
            f"stated/actual median {statistics.median(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f}"
            if ratios
            else "no stated waits"
        )
        return "\n".join(lines)


def stated(text: str) -> tuple[int, float | None]:
    match = _STATED.search(text)
    if not match:
        raise AssertionError(f"no position in the status reply: {text!r}")
    position = int(match.group(1))
    if match.group(2) is None:
        return position, None
    return position, float(match.group(2)) * (60 if match.group(3) == "min" else 1)


def settings_for(bootstrap: str, folder: Path, telegram: FakeBotAPI, args: argparse.Namespace) -> Settings:
    run = uuid.uuid4().hex[:8]
    prior, decoder = args.steps
    values: dict[str, Any] = dict(  # validated by Settings (str to SecretStr, backends by name)
        _env_file=None,
        telegram_bot_token=telegram.token,
        telegram_api_url=telegram.base_url,
        http_host="127.0.0.1",
        http_port=0,
        queue_backend="kafka",
        kafka_bootstrap_servers=bootstrap,
        kafka_requests_topic=f"wait-{run}.requests",
        kafka_results_topic=f"wait-{run}.results",
        kafka_dead_letter_topic=f"wait-{run}.dead",
        kafka_worker_group=f"wait-{run}-workers",
        kafka_bot_group=f"wait-{run}-bots",
        kafka_partitions=4,
        generator="tiny",
        tiny_model_dir=args.model_dir,
        generator_threads=args.threads,
        generator_dtype=args.dtype,
        max_batch=args.max_batch,
        quality_policy="fixed",
        default_quality="fast",
        quality_profiles={"fast": {"prior_steps": prior, "decoder_steps": decoder, "max_side": args.size}},
        default_width=args.size,
        default_height=args.size,
        min_side=min(256, args.size),
        max_side=max(512, args.size),
        local_storage_dir=folder / "images",
        sqlite_path=folder / "p2p.sqlite3",
        calibration_cache=folder / "worker-speed.json",  # the worker times itself at start, cached here
        calibration_budget_s=args.calibration_budget,
        max_jobs_in_flight_per_user=3,
        user_rate_per_minute=100,
        status_edit_interval_s=1.0,
        queue_refresh_s=3.0,
    )
    return Settings(**values)


def photos_of(tg: FakeBotAPI, user: int) -> list[Any]:
    return [c for c in tg.calls if c.chat_id == user and c.ok and c.method in ("sendPhoto", "sendDocument")]


async def wait_photos(tg: FakeBotAPI, users: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(photos_of(tg, u) for u in users):
        if time.monotonic() > deadline:
            missing = [u for u in users if not photos_of(tg, u)]
            raise AssertionError(f"{len(missing)} user(s) got no picture within {timeout:.0f} s: {missing[:10]}")
        await asyncio.sleep(0.05)


async def run_load(bootstrap: str, args: argparse.Namespace) -> Report:
    telegram = FakeBotAPI()
    await telegram.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(bootstrap, Path(tmp), telegram, args)
        stop = asyncio.Event()
        task = asyncio.create_task(app.serve(Components(settings, role="all"), stop))
        try:
            await telegram.wait_for(lambda c: c.method == "deleteWebhook", timeout=120)
            await telegram.wait_polling(timeout=120)
            report = Report(rows=[])
            for i in range(args.warmup):  # one after the other: the bot sees how fast the worker is
                user = 5000 + i
                pushed = time.monotonic()
                telegram.send_text(user, f"a warm-up lighthouse number {i}")
                await wait_photos(telegram, [user], args.timeout)
                report.warmup_s.append(photos_of(telegram, user)[0].at - pushed)
            for round_ in range(args.warmup_batches if args.warmup_batch else 0):
                # and batches at once: a second batch size, for the line (more than one: the first
                # batch of a size carries one-time costs that later ones do not)
                first_user = 5500 + round_ * args.warmup_batch
                batch_users = list(range(first_user, first_user + args.warmup_batch))
                pushed = time.monotonic()
                for user in batch_users:
                    telegram.send_text(user, f"a warm-up harbour for {user}")
                await wait_photos(telegram, batch_users, args.timeout)
                report.warmup_s.append(max(photos_of(telegram, u)[0].at for u in batch_users) - pushed)
            users = list(range(6000, 6000 + args.users))
            pushed_at = {}
            for user in users:
                pushed_at[user] = time.monotonic()
                telegram.send_text(user, f"a castle in the clouds for user {user}")
            await wait_photos(telegram, users, args.timeout)
            await asyncio.sleep(2.0)  # a second picture to anyone would show up now
            for user in users:
                first = next(c for c in telegram.calls if c.chat_id == user and c.method == "sendMessage" and c.ok)
                position, stated_s = stated(first.text)
                photos = photos_of(telegram, user)
                report.rows.append(Row(user, position, stated_s, photos[0].at - pushed_at[user], len(photos)))
            report.refused = [f"{c.method}: {c.error}" for c in telegram.calls if not c.ok]
            return report
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
            await telegram.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2, help="prompts sent one by one before the load")
    parser.add_argument("--warmup-batch", type=int, default=0, help="then this many at once (0: none)")
    parser.add_argument("--warmup-batches", type=int, default=1, help="that many times, one after the other")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--steps",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        default=(20, 20),
        help="prior,decoder steps of the profile used (at a few steps the tiny model is so "
        "fast that the bot's 30 calls/s, not the worker, set the pace)",
    )
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--dtype", default="float32", help="GENERATOR_DTYPE (the tiny model's small layers run slower in bf16 on a CPU)"
    )
    parser.add_argument(
        "--calibration-budget",
        type=float,
        default=10.0,
        help="CALIBRATION_BUDGET_S: seconds the worker's timing of itself at start may take",
    )
    parser.add_argument("--model-dir", default=os.path.join(tempfile.gettempdir(), "p2p-tiny-wuerstchen"))
    parser.add_argument("--timeout", type=float, default=600)
    return parser.parse_args(argv)


def main() -> int:
    from bench.queue_bench import run_on_broker

    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    report = run_on_broker(lambda bootstrap: run_load(bootstrap, args))
    print(
        f"queue positions and waits: {args.users} users at once after {args.warmup} warm-up prompt(s) "
        f"one by one and {args.warmup_batch} at once; "
        f"tiny Würstchen {args.size}x{args.size}, {args.steps[0]}+{args.steps[1]} steps, max batch "
        f"{args.max_batch}, {args.threads} torch threads, one worker, real Kafka broker"
    )
    print("warm-up waits (s): " + ", ".join(f"{s:.1f}" for s in report.warmup_s))
    print(report.table())
    positions = sorted(r.position for r in report.rows)
    print(
        f"positions stated: {positions[0]}..{positions[-1]} "
        f"({'1 up, each once' if positions == list(range(1, len(positions) + 1)) else 'NOT 1..n'}); "
        f"pictures per user: {dict(Counter(r.photos for r in report.rows))}; refused calls: {len(report.refused)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
