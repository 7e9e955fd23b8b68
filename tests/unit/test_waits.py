"""The wait estimate (domain/waits.py): from batches seen, workers busy and their progress."""

from __future__ import annotations

import pytest

from domain.waits import WaitEstimator

NOW = 50_000.0


def batch(est: WaitEstimator, worker: str, start: float, size: int, cycle: float, gen: float | None = None) -> None:
    for i in range(size):
        est.started(worker, f"{worker}-{start}-{i}", start)
    for i in range(size):
        est.finished(
            worker,
            f"{worker}-{start}-{i}",
            started_at=start,
            finished_at=start + cycle,
            generation_s=gen if gen is not None else cycle * 0.9,
        )


def test_unknown_before_any_batch():
    assert WaitEstimator(max_batch=4).wait_s(3, NOW) is None


def test_one_worker_one_at_a_time():
    est = WaitEstimator(max_batch=1)
    batch(est, "w", NOW - 100, 1, 10.0)
    assert est.wait_s(0, NOW) == pytest.approx(10.0)
    assert est.wait_s(4, NOW) == pytest.approx(50.0)  # five batches of one


def test_batches_are_told_apart_by_their_generation_time_and_sized():
    est = WaitEstimator(max_batch=4)
    batch(est, "w", NOW - 100, 4, 8.0, gen=7.0)
    batch(est, "w", NOW - 50, 1, 2.0, gen=1.5)
    assert est.batch_s(4, NOW) == pytest.approx(8.0)
    assert est.batch_s(1, NOW) == pytest.approx(2.0)
    # nine ahead + me = ten jobs: batches of 4, 4, 2 one after the other
    assert est.wait_s(9, NOW) == pytest.approx(8.0 + 8.0 + est.batch_s(2, NOW))


def test_more_workers_share_the_line():
    est = WaitEstimator(max_batch=1)
    batch(est, "a", NOW - 100, 1, 10.0)
    batch(est, "b", NOW - 90, 1, 10.0, gen=9.1)
    assert est.workers(NOW) == 2
    assert est.wait_s(3, NOW) == pytest.approx(20.0)  # 4 jobs, 2 workers: two rounds


def test_a_busy_worker_frees_up_after_its_batch():
    est = WaitEstimator(max_batch=1)
    batch(est, "w", NOW - 100, 1, 10.0)
    est.started("w", "running", NOW - 4)
    # one picture before mine (the one being drawn): its batch has 6 s to go, then mine
    assert est.wait_s(1, NOW) == pytest.approx(6.0 + 10.0)
    est.progressed("w", "running", 2, 20, NOW - 1)  # running late (2 of 20 steps in 3 s: 30 s in all)
    assert est.wait_s(1, NOW + 8) == pytest.approx(30.0 - 12.0 + 10.0)
    est.finished("w", "running", started_at=NOW - 4, finished_at=NOW, generation_s=3.9)
    assert est.wait_s(0, NOW) == pytest.approx(est.batch_s(1, NOW))


def test_delivery_time_is_added():
    est = WaitEstimator(max_batch=1)
    batch(est, "w", NOW - 100, 1, 10.0)
    est.delivered(1.5)
    assert est.wait_s(0, NOW) == pytest.approx(11.5)


def test_old_batches_and_workers_are_forgotten():
    est = WaitEstimator(max_batch=1, horizon_s=60)
    batch(est, "w", NOW - 1000, 1, 10.0)
    assert est.wait_s(0, NOW) is None


def test_one_size_seen_each_further_image_adds_a_half():
    est = WaitEstimator(max_batch=8)
    batch(est, "w", NOW - 100, 1, 3.0)
    assert est.batch_s(1, NOW) == pytest.approx(3.0)
    assert est.batch_s(7, NOW) == pytest.approx(3.0 * (1 / 2 + 7 / 2))


def test_sizes_that_draw_no_rising_line_fall_back_to_the_lone_time():
    est = WaitEstimator(max_batch=8)
    batch(est, "w", NOW - 100, 4, 2.0, gen=1.9)  # a batch of 4 faster than
    batch(est, "w", NOW - 50, 1, 3.0, gen=2.9)  # a lone image (noise, another load)
    assert est.batch_s(1, NOW) > 0 and est.wait_s(10, NOW) > est.wait_s(0, NOW)


def test_pictures_ahead_at_the_outbound_rate_bound_the_wait():
    est = WaitEstimator(max_batch=8, send_s=0.1)  # 3 calls a picture at 30 calls/s
    batch(est, "w", NOW - 100, 8, 0.4, gen=0.3)  # a very fast worker
    assert est.wait_s(29, NOW) == pytest.approx(3.0)  # 30 pictures to send: 3 s, not 4 x 0.4 s
    assert est.wait_s(0, NOW) == pytest.approx(0.5)  # (never less than half a second)


def test_a_free_worker_has_taken_the_jobs_ahead_already():
    # Two pictures ahead and the worker free as far as the bot heard: it took them the moment they
    # came (its "started" events are on their way), so this job is in the batch after theirs.
    est = WaitEstimator(max_batch=8)
    batch(est, "w", NOW - 100, 1, 2.0)
    batch(est, "w", NOW - 50, 4, 5.0, gen=4.9)  # a line: 1 s per batch and 1 s per image
    assert est.wait_s(2, NOW) == pytest.approx(est.batch_s(2, NOW) + est.batch_s(1, NOW))
    assert est.wait_s(0, NOW) == pytest.approx(est.batch_s(1, NOW))  # nobody ahead: at once, alone


def test_jobs_that_come_meanwhile_fill_the_batch_of_a_waiting_job():
    est = WaitEstimator(max_batch=8)
    batch(est, "w", NOW - 100, 1, 2.0)
    batch(est, "w", NOW - 50, 4, 5.0, gen=4.9)  # 1 s per batch and 1 s per image
    for i in range(8):
        est.started("w", f"r{i}", NOW - 1)  # a batch of 8 being drawn: 9 s, 8 to go
    quiet = est.wait_s(8, NOW)  # nobody else came lately: my batch will be mine alone
    assert quiet == pytest.approx(8.0 + est.batch_s(1, NOW))
    for i in range(6):
        est.arrived(NOW - 3 + 0.5 * i)  # six admissions in the last 3 s (the last: mine)
    # In the 8 s until the worker frees up as many come again as in the 8 s before: five more
    # (mine not counted) join my batch.
    assert est.wait_s(8, NOW) == pytest.approx(8.0 + est.batch_s(6, NOW))
    assert est.coming(2.0, NOW) == 2  # three in the last 2 s, the latest (most likely mine) not counted


def test_the_place_counts_the_pictures_being_drawn():
    est = WaitEstimator(max_batch=4)
    batch(est, "w", NOW - 100, 1, 2.0)
    batch(est, "w", NOW - 50, 4, 5.0, gen=4.9)  # 1 s per batch and 1 s per image
    for i in range(4):
        est.started("w", f"r{i}", NOW)
    assert est.drawing(NOW) == 4
    # four being drawn, two waiting ahead, then mine: one batch after theirs (nobody else came)
    assert est.wait_s(6, NOW) == pytest.approx(5.0 + est.batch_s(3, NOW))
    assert est.wait_s(2, NOW) == est.wait_s(6, NOW) - 2.0  # fewer counted ahead than drawn: next
