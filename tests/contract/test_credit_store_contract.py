"""The credit store's contract (``domain.ports.CreditStore``: credits bought with Telegram Stars),
run against every user store (memory, SQLite, PostgreSQL): a payment credited exactly once by its
charge id, even when handed over twice at the same moment or by two processes sharing the file;
a credit spent once per job and given back once; a refund that takes back only what is left;
every move with its ledger row (the ledger always adds up to the balance)."""

from __future__ import annotations

import asyncio
import sqlite3

from adapters.sqlite.user_store import SqliteUserStore
from domain.credits import LedgerKind, StarPayment
from domain.users import JobState, Outcome, UserLimits
from tests.contract.test_user_store_contract import NOW, record


def paid(charge: str, user: int = 1, credits: int = 10, stars: int = 50) -> StarPayment:
    return StarPayment(charge, user, stars, credits, f"credits:{credits}:{stars}", NOW)


async def adds_up(store, user: int) -> int:
    """The balance, checked against the ledger's sum."""
    balance = await store.credits(user)
    assert sum(e.credits for e in await store.ledger(user)) == balance
    return balance


async def test_a_payment_is_credited_exactly_once(store):
    assert await store.credits(1) == 0
    assert await store.credit_purchase(paid("ch-1")) is True
    assert await store.credit_purchase(paid("ch-1")) is False  # the same update handed over again
    assert await adds_up(store, 1) == 10
    [entry] = await store.ledger(1)
    assert (entry.kind, entry.credits, entry.stars, entry.charge_id) == (LedgerKind.PURCHASE, 10, 50, "ch-1")
    payment = await store.get_payment("ch-1")
    assert payment is not None and (payment.user_id, payment.credits, payment.refunded_at) == (1, 10, None)
    assert await store.get_payment("nope") is None


async def test_one_payment_handed_over_at_once_many_times_is_credited_once(store):
    results = await asyncio.gather(*(store.credit_purchase(paid("ch-2", credits=5)) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert await adds_up(store, 1) == 5


async def test_a_credit_is_spent_once_per_job_and_marks_it_paid(store):
    await store.admit([record("j1"), record("j2"), record("j3")], UserLimits(max_in_flight=0), NOW)
    assert await store.spend_credit(1, "j1", NOW) is False  # nothing bought yet
    await store.credit_purchase(paid("ch-3", credits=2))
    assert await store.spend_credit(1, "j1", NOW) is True
    assert await store.spend_credit(1, "j1", NOW + 1) is True  # the same job again: not charged twice
    assert await adds_up(store, 1) == 1
    assert (await store.get_job("j1")).paid_credit is True
    assert (await store.get_job("j2")).paid_credit is False
    assert await store.spend_credit(2, "j2", NOW) is False  # not the job's user
    assert await store.spend_credit(1, "unknown", NOW) is False
    assert await store.spend_credit(1, "j2", NOW) is True
    assert await store.spend_credit(1, "j3", NOW) is False  # none left
    assert await adds_up(store, 1) == 0
    kinds = [e.kind for e in await store.ledger(1)]
    assert kinds == [LedgerKind.PURCHASE, LedgerKind.SPEND, LedgerKind.SPEND]


async def test_a_paid_jobs_credit_comes_back_once(store):
    await store.admit([record("g1"), record("g2")], UserLimits(max_in_flight=0), NOW)
    await store.credit_purchase(paid("ch-4", credits=1))
    await store.spend_credit(1, "g1", NOW)
    assert await store.give_back_credit("g2", NOW) is False  # not paid
    assert await store.give_back_credit("g1", NOW) is True
    assert await store.give_back_credit("g1", NOW) is False  # once
    assert await adds_up(store, 1) == 1
    both = await asyncio.gather(store.give_back_credit("g1", NOW), store.give_back_credit("g1", NOW))
    assert both == [False, False]


async def test_a_refund_takes_back_only_the_credits_left_once(store):
    await store.admit([record(f"r{i}") for i in range(3)], UserLimits(max_in_flight=0), NOW)
    await store.credit_purchase(paid("ch-5", credits=10, stars=50))
    for i in range(3):
        assert await store.spend_credit(1, f"r{i}", NOW)
    assert await store.refund_payment("unknown", NOW) is None
    done = await store.refund_payment("ch-5", NOW + 5)
    assert done is not None and done.first and done.taken_back == 7
    assert done.payment.refunded_at == NOW + 5
    again = await store.refund_payment("ch-5", NOW + 6)
    assert again is not None and not again.first and again.taken_back == 7
    assert await adds_up(store, 1) == 0
    [refund] = [e for e in await store.ledger(1) if e.kind == LedgerKind.REFUND]
    assert (refund.credits, refund.stars, refund.charge_id) == (-7, -50, "ch-5")
    # the 3 credits missing were spent on jobs still in flight: theirs are final now
    kept = [e for e in await store.ledger(1) if e.kind == LedgerKind.KEPT]
    assert sorted(e.job_id for e in kept) == ["r0", "r1", "r2"] and {e.credits for e in kept} == {0}
    stored = await store.get_payment("ch-5")
    assert stored is not None and stored.refunded_at == NOW + 5 and stored.credits_taken_back == 7


async def test_a_refund_takes_no_more_than_its_own_pack(store):
    await store.credit_purchase(paid("ch-6", credits=10))
    await store.credit_purchase(paid("ch-7", credits=5, stars=20))
    done = await store.refund_payment("ch-7", NOW)
    assert done is not None and done.taken_back == 5
    assert await adds_up(store, 1) == 10


async def test_two_processes_sharing_the_file_credit_a_payment_once(tmp_path):
    """Two bot processes on one host share the SQLite file: each its own connection."""
    first, second = SqliteUserStore(tmp_path / "p.db"), SqliteUserStore(tmp_path / "p.db")
    await first.start()
    await second.start()
    try:
        results = await asyncio.gather(*(s.credit_purchase(paid("ch-8")) for s in (first, second) * 3))
        assert sorted(results) == [False] * 5 + [True]
        assert await first.credits(1) == await second.credits(1) == 10
    finally:
        await first.stop()
        await second.stop()


async def test_a_database_of_the_previous_release_gets_the_credit_columns(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE users (user_id INTEGER PRIMARY KEY, locale TEXT, aspect TEXT, "
        "quality TEXT NOT NULL DEFAULT 'auto', send_as TEXT NOT NULL DEFAULT 'photo', blocked_at REAL)"
    )
    conn.execute("INSERT INTO users (user_id, locale) VALUES (1, 'ru')")
    conn.commit()
    conn.close()
    store = SqliteUserStore(path)
    await store.start()
    try:
        assert await store.credits(1) == 0
        assert await store.credit_purchase(paid("ch-9", credits=3))
        assert await adds_up(store, 1) == 3
        assert (await store.get_prefs(1)).locale == "ru"
    finally:
        await store.stop()


async def test_a_refund_keeps_the_credits_of_its_jobs_in_flight_from_coming_back(store):
    """Credits spent on jobs not finished yet are not spent for good: were the refund to leave
    them, cancelling those jobs after the refund would give the credits back on top of the
    Stars. The refund takes what is left, then makes the credits of that many jobs in flight
    final (their pictures still come; a failure no longer gives the credit back)."""
    await store.admit([record(f"k{i}") for i in range(4)], UserLimits(max_in_flight=0), NOW)
    await store.credit_purchase(paid("ch-8", credits=3, stars=15))
    for i in range(3):
        assert await store.spend_credit(1, f"k{i}", NOW)
    await store.finish("k0", Outcome(JobState.DONE, NOW + 1))  # drawn: spent for good
    done = await store.refund_payment("ch-8", NOW + 2)
    assert done is not None and done.taken_back == 0
    for job in ("k1", "k2"):  # cancelled after the refund: nothing comes back
        await store.cancel(job, 1, NOW + 3)
        assert await store.give_back_credit(job, NOW + 3) is False, job
    assert await adds_up(store, 1) == 0
    assert [e.kind for e in await store.ledger(1)].count(LedgerKind.GIVE_BACK) == 0


async def test_a_refund_keeps_only_as_many_jobs_as_its_pack_lacks(store):
    await store.admit([record(f"m{i}") for i in range(2)], UserLimits(max_in_flight=0), NOW)
    await store.credit_purchase(paid("ch-9", credits=2, stars=10))
    await store.credit_purchase(paid("ch-10", credits=2, stars=10))
    for i in range(2):
        assert await store.spend_credit(1, f"m{i}", NOW)
    done = await store.refund_payment("ch-9", NOW + 1)  # its 2 credits are there: taken back
    assert done is not None and done.taken_back == 2
    assert await store.give_back_credit("m0", NOW + 2) is True  # (paid from the other pack)
    assert await adds_up(store, 1) == 1


async def test_no_credit_is_spent_on_a_job_that_has_ended(store):
    """A job cancelled (or finished) between its admission and the spending: its give-back
    already ran and found it unpaid, so a credit spent now would never come back."""
    await store.admit([record("e1"), record("e2")], UserLimits(max_in_flight=0), NOW)
    await store.credit_purchase(paid("ch-11", credits=2))
    assert await store.cancel("e1", 1, NOW + 1) is not None
    await store.finish("e2", Outcome(JobState.FAILED, NOW + 1))
    assert await store.spend_credit(1, "e1", NOW + 2) is False
    assert await store.spend_credit(1, "e2", NOW + 2) is False
    assert await adds_up(store, 1) == 2
