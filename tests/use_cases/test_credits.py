"""Credits bought with Stars, on the memory adapters: a credit spent at admission marks the job
paid (full quality); a paid job that ends without a picture (an honest error, too many attempts,
refused by the image check, cancelled) gives it back by itself, once; a picture keeps it spent;
the pre-checkout check; a refund through the platform port, and the catch-up from its record."""

from __future__ import annotations

import pytest

from adapters.embedded.user_store import MemoryUserStore
from domain.credits import CheckoutRefusal, CreditPack, LedgerKind, StarPayment, parse_packs
from domain.errors import RefundRefused
from domain.lanes import LaneRules
from domain.models import ErrorCode, Lane, Locale, Quality, Result
from domain.use_cases.admit import CancelJob
from domain.use_cases.credits import SellCredits, SpendCredits
from domain.use_cases.outcomes import RecordOutcomes
from domain.users import JobState, Outcome
from tests.use_cases.doubles import NOW, job
from tests.use_cases.test_outcomes import Channel


class Recorded:
    """Metrics that remember the credits' moves."""

    def __init__(self) -> None:
        self.moves: list[tuple[str, int]] = []
        self.stars = 0

    def stars_received(self, stars: int) -> None:
        self.stars += stars

    def credits_moved(self, kind: str, credits: int) -> None:
        self.moves.append((kind, credits))

    def __getattr__(self, name):  # every other metric: nothing to remember
        return lambda *args, **kwargs: None


def payment(charge: str = "ch-1", user: int = 5, credits: int = 2, stars: int = 10) -> StarPayment:
    return StarPayment(charge, user, stars, credits, f"credits:{credits}:{stars}", NOW)


@pytest.fixture
async def paying(bot):
    _queue, store, submit, _announcer, admit = bot
    metrics = Recorded()
    admit.credits = SpendCredits(store, metrics=metrics, clock=lambda: NOW)
    return store, submit, admit, metrics


async def test_a_job_of_a_user_with_a_credit_is_paid_and_asks_for_full_quality(paying):
    store, submit, admit, metrics = paying
    [free] = await admit([job(submit, user=5, prompt="a free fox")])
    assert not free.paid_credit and not (await store.get_job(free.job_id)).paid_credit
    await store.credit_purchase(payment())
    [bought] = await admit([job(submit, user=5, prompt="a paid fox")])
    assert bought.paid_credit and bought.quality == Quality.QUALITY
    record = await store.get_job(bought.job_id)
    assert record.paid_credit and record.job().paid_credit  # the outbox publishes it paid too
    assert record.job().quality == Quality.QUALITY
    assert await store.credits(5) == 1
    assert metrics.moves == [("spend", 1)]


async def test_a_credit_puts_a_heavy_users_job_in_the_priority_lane_and_only_as_many_as_they_have(paying):
    """The lanes and the credits together: a user past the recent-use threshold goes relaxed,
    but a credit buys the priority lane (reason ``credit``); of variations asked for at once,
    only as many are paid as there are credits, the rest follow the usage rules."""
    store, submit, admit, _metrics = paying
    admit.lanes = LaneRules(relaxed_after=1)
    [first] = await admit([job(submit, user=5, prompt="a fox")])
    [heavy] = await admit([job(submit, user=5, prompt="a second fox")])
    assert (first.lane, heavy.lane, heavy.paid_credit) == (Lane.PRIORITY, Lane.RELAXED, False)
    for done in (first, heavy):  # pictures made (they count as use; the in-flight limit is 3)
        await store.finish(done.job_id, Outcome(JobState.DONE, NOW))
    await store.credit_purchase(payment(credits=1))
    paid, unpaid = await admit([job(submit, user=5, prompt="a third fox"), job(submit, user=5, prompt="a 4th")])
    assert (paid.lane, paid.paid_credit, paid.quality) == (Lane.PRIORITY, True, Quality.QUALITY)
    assert (unpaid.lane, unpaid.paid_credit) == (Lane.RELAXED, False)
    assert (await store.get_job(paid.job_id)).lane == Lane.PRIORITY
    assert await store.credits(5) == 0


@pytest.mark.parametrize("code", [ErrorCode.GENERATION_FAILED, ErrorCode.TOO_MANY_ATTEMPTS, ErrorCode.IMAGE_REFUSED])
async def test_a_paid_job_that_ends_without_a_picture_gives_its_credit_back(paying, code):
    store, submit, admit, metrics = paying
    await store.credit_purchase(payment(credits=1))
    [bought] = await admit([job(submit, user=5)])
    assert await store.credits(5) == 0
    outcomes = RecordOutcomes(Channel(), store, clock=lambda: NOW + 9, credits=admit.credits)
    failure = Result.failure(bought, code)
    await outcomes.deliver(failure, _nothing)
    await outcomes.deliver(failure, _nothing)  # the same result delivered again: once
    assert await store.credits(5) == 1
    assert [e.kind for e in await store.ledger(5)] == [LedgerKind.PURCHASE, LedgerKind.SPEND, LedgerKind.GIVE_BACK]
    assert metrics.moves == [("spend", 1), ("give_back", 1)]


async def test_a_paid_picture_keeps_its_credit_spent(paying):
    store, submit, admit, _metrics = paying
    await store.credit_purchase(payment(credits=1))
    [bought] = await admit([job(submit, user=5)])
    outcomes = RecordOutcomes(Channel(), store, credits=admit.credits)
    await outcomes.deliver(Result.done(bought, "k.png", "https://img.example.com/k.png", 256, 256), _nothing)
    assert (await store.get_job(bought.job_id)).state == JobState.DONE
    assert await store.credits(5) == 0


async def test_a_cancelled_paid_job_gives_its_credit_back(paying, bot):
    queue, store, submit, announcer, admit = bot
    await store.credit_purchase(payment(credits=1))
    [bought] = await admit([job(submit, user=5)])
    cancel = CancelJob(store, queue, announcer, credits=admit.credits)
    assert await cancel(await store.get_job(bought.job_id), 5, Locale.EN)
    assert await store.credits(5) == 1


async def _nothing() -> None:
    return None


class Platform:
    """The payment platform's port, as strict as Telegram about refunds."""

    def __init__(self, payments=()) -> None:
        self.payments = list(payments)
        self.refunded: list[tuple[int, str]] = []

    async def refund(self, user_id: int, charge_id: str) -> None:
        if (user_id, charge_id) in self.refunded:
            raise RefundRefused(charge_id=charge_id, reason="already_refunded")
        if charge_id not in {p.charge_id for p in self.payments}:
            raise RefundRefused(charge_id=charge_id, reason="unknown_charge")
        self.refunded.append((user_id, charge_id))

    async def received(self, since: float) -> list[StarPayment]:
        return [p for p in self.payments if p.paid_at >= since]


async def test_selling_checks_the_pack_its_price_in_stars_and_the_user():
    sell = SellCredits(MemoryUserStore(), parse_packs("10:50, 50:200"))
    ten = CreditPack(10, 50)
    assert sell.check(payload=ten.payload, currency="XTR", total=50, banned=False) is None
    assert sell.check(payload=ten.payload, currency="XTR", total=50, banned=True) == CheckoutRefusal.BANNED
    refused = sell.check(payload=ten.payload, currency="XTR", total=50, banned=False, allowed=False)
    assert refused == CheckoutRefusal.NOT_ALLOWED
    assert sell.check(payload=ten.payload, currency="XTR", total=49, banned=False) == CheckoutRefusal.UNKNOWN_PACK
    assert sell.check(payload=ten.payload, currency="USD", total=50, banned=False) == CheckoutRefusal.UNKNOWN_PACK
    assert sell.check(payload="credits:10:1", currency="XTR", total=1, banned=False) == CheckoutRefusal.UNKNOWN_PACK
    off = SellCredits(MemoryUserStore(), ())
    assert off.check(payload=ten.payload, currency="XTR", total=50, banned=False) == CheckoutRefusal.OFF


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10", "not CREDITS:STARS"),
        ("10:x", "not CREDITS:STARS"),
        ("0:5", "from 1 to 10000"),
        ("", "no pack"),
        ("10:5,10:7", "two packs of 10"),
    ],
)
def test_packs_that_make_no_sense_are_refused_with_what_is_wrong(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_packs(text)


async def test_a_refund_returns_the_stars_then_takes_back_what_is_left():
    store = MemoryUserStore()
    paid = payment(credits=3)
    platform = Platform([paid])
    metrics = Recorded()
    sell = SellCredits(store, parse_packs("3:10"), platform, metrics=metrics, clock=lambda: NOW + 1)
    assert await sell.credit(paid) and not await sell.credit(paid)
    assert metrics.stars == 10 and metrics.moves == [("purchase", 3)]
    with pytest.raises(RefundRefused) as unknown:
        await sell.refund("nope")
    assert unknown.value.params["reason"] == "unknown_charge"
    done = await sell.refund(paid.charge_id)
    assert platform.refunded == [(5, "ch-1")] and done.refunded.taken_back == 3 and not done.refunded_before
    again = await sell.refund(paid.charge_id)  # the platform says it was refunded: nothing more is taken
    assert again.refunded_before and not again.refunded.first
    assert await store.credits(5) == 0
    assert metrics.moves == [("purchase", 3), ("refund", 3)]


async def test_payments_whose_message_was_lost_are_credited_from_the_platforms_record():
    store = MemoryUserStore()
    kept, lost = payment("ch-kept"), payment("ch-lost", credits=5)
    sell = SellCredits(store, parse_packs("2:10,5:20"), Platform([kept, lost]))
    await sell.credit(kept)
    assert await sell.catch_up(NOW - 60) == [lost]
    assert await sell.catch_up(NOW - 60) == []
    assert await store.credits(5) == 7
