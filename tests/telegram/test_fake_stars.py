"""The fake Bot API learns Telegram Stars as Telegram checks them, through aiogram's own client:
an invoice in XTR takes exactly one price and no provider token; a pre-checkout query answered
after Telegram's 10 s fails and charges nothing; an accepted one charges the user and sends
``successful_payment`` as a message; refunding an unknown or an already refunded charge is
refused with Telegram's texts."""

from __future__ import annotations

import asyncio

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import LabeledPrice

from adapters.telegram.bot import build_bot
from tests.fakes.telegram.payments import (
    CHARGE_ALREADY_REFUNDED,
    CHARGE_ID_INVALID,
    PAYMENT_PROVIDER_INVALID,
    QUERY_TOO_OLD,
    STARS_INVOICE_INVALID,
)


@pytest.fixture
async def bot(telegram):
    bot = build_bot(telegram.token, telegram.base_url)
    yield bot
    await bot.session.close()


def invoice(**overrides):
    values = dict(
        chat_id=7,
        title="10 pictures",
        description="10 credits",
        payload="credits:10:50",
        currency="XTR",
        prices=[LabeledPrice(label="10 credits", amount=50)],
        provider_token="",
    )
    values.update(overrides)
    return values


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"prices": [LabeledPrice(label="a", amount=40), LabeledPrice(label="b", amount=10)]}, STARS_INVOICE_INVALID),
        ({"provider_token": "284685063:TEST:abc"}, STARS_INVOICE_INVALID),
        ({"max_tip_amount": 10, "suggested_tip_amounts": [5]}, STARS_INVOICE_INVALID),
        ({"currency": "USD"}, PAYMENT_PROVIDER_INVALID),
        ({"prices": []}, "Bad Request: There must be at least one price"),
        ({"prices": [LabeledPrice(label="", amount=50)]}, "Bad Request: Can't parse labeled price: LabeledPrice"),
    ],
)
async def test_an_invoice_telegram_would_refuse_is_refused(bot, telegram, overrides, description):
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.send_invoice(**invoice(**overrides))
    assert refused.value.message.startswith(description)
    assert telegram.invoices == {}


async def test_a_stars_invoice_is_a_message_the_user_pays_from(bot, telegram):
    sent = await bot.send_invoice(**invoice())
    assert sent.invoice is not None and sent.invoice.currency == "XTR" and sent.invoice.total_amount == 50
    query_id = telegram.pay(7, sent.message_id)
    [update] = [u for u in telegram._updates if "pre_checkout_query" in u]
    assert update["pre_checkout_query"]["invoice_payload"] == "credits:10:50"
    assert await bot.answer_pre_checkout_query(query_id, ok=True)
    charge = telegram.charge_of(query_id)
    assert charge and telegram.stars_spent[7] == 50
    [paid] = [u for u in telegram._updates if "successful_payment" in u.get("message", {})]
    payment = paid["message"]["successful_payment"]
    assert payment["telegram_payment_charge_id"] == charge and payment["currency"] == "XTR"
    with pytest.raises(TelegramBadRequest) as twice:
        await bot.answer_pre_checkout_query(query_id, ok=True)
    assert twice.value.message == QUERY_TOO_OLD
    history = await bot.get_star_transactions()
    assert [(t.id, t.amount) for t in history.transactions] == [(charge, 50)]


async def test_a_pre_checkout_answered_after_10_s_fails_and_charges_nothing(bot, telegram):
    sent = await bot.send_invoice(**invoice())
    telegram.pre_checkout_timeout_s = 0.2  # Telegram's 10 s, shortened
    query_id = telegram.pay(7, sent.message_id)
    await asyncio.sleep(0.3)
    with pytest.raises(TelegramBadRequest) as late:
        await bot.answer_pre_checkout_query(query_id, ok=True)
    assert late.value.message == QUERY_TOO_OLD
    assert telegram.charge_of(query_id) is None and telegram.stars_spent == {}
    assert not [u for u in telegram._updates if "successful_payment" in u.get("message", {})]


async def test_a_refusal_needs_its_message_and_charges_nothing(bot, telegram):
    sent = await bot.send_invoice(**invoice())
    query_id = telegram.pay(7, sent.message_id)
    with pytest.raises(TelegramBadRequest) as bare:
        await bot.answer_pre_checkout_query(query_id, ok=False)
    assert bare.value.message == 'Bad Request: Parameter "error_message" is required'
    assert await bot.answer_pre_checkout_query(query_id, ok=False, error_message="sold out")
    assert telegram.charge_of(query_id) is None


async def test_refunds_of_unknown_or_refunded_charges_are_refused(bot, telegram):
    sent = await bot.send_invoice(**invoice())
    query_id = telegram.pay(7, sent.message_id)
    await bot.answer_pre_checkout_query(query_id, ok=True)
    charge = telegram.charge_of(query_id)
    with pytest.raises(TelegramBadRequest) as unknown:
        await bot.refund_star_payment(7, "stxNOSUCHCHARGE")
    assert unknown.value.message == CHARGE_ID_INVALID
    with pytest.raises(TelegramBadRequest) as not_theirs:
        await bot.refund_star_payment(8, charge)
    assert not_theirs.value.message == CHARGE_ID_INVALID
    assert await bot.refund_star_payment(7, charge)
    assert telegram.stars_spent[7] == 0
    with pytest.raises(TelegramBadRequest) as again:
        await bot.refund_star_payment(7, charge)
    assert again.value.message == CHARGE_ALREADY_REFUNDED
    history = await bot.get_star_transactions()
    assert [t.receiver is not None for t in history.transactions] == [False, True]
