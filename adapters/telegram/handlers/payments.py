"""Telegram Stars (PAYMENTS=stars): /buy and its pack buttons, the pre-checkout query, the
successful payment, /credits, /paysupport, /terms and the admins' /refund (adapters/telegram/
payments.py). With payments off (``payments`` is None) the commands say so, and a pre-checkout
query (an old invoice) is refused."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message, PreCheckoutQuery

from adapters.telegram.middleware import telegram_locale
from adapters.telegram.payments import BuyPack, Payments
from adapters.telegram.replies import Replies
from domain.models import Locale


async def _off(message: Message, replies: Replies, locale: Locale) -> None:
    await replies.reply(message.chat.id, replies.t(locale, "pay-off"))


async def on_buy(message: Message, payments: Payments | None, replies: Replies, locale: Locale) -> None:
    if payments is None:
        return await _off(message, replies, locale)
    await payments.show_packs(message, locale)


async def on_pack(
    query: CallbackQuery, callback_data: BuyPack, payments: Payments | None, replies: Replies, locale: Locale
) -> None:
    if payments is None:
        return await replies.answer(query, replies.t(locale, "pay-off"), alert=True)
    await payments.send_invoice(query, callback_data.credits, locale)


async def on_pre_checkout(query: PreCheckoutQuery, payments: Payments | None, replies: Replies) -> None:
    locale = telegram_locale(query.from_user)
    if payments is None:
        await query.answer(ok=False, error_message=replies.t(locale, "pay-refused-off"))
        return
    await payments.pre_checkout(query, locale)


async def on_paid(message: Message, payments: Payments | None, replies: Replies, locale: Locale) -> None:
    if payments is None:  # turned off after the invoice went out: the payment is still the user's
        return await replies.reply(message.chat.id, replies.t(locale, "pay-unknown"))
    await payments.paid(message, locale)


async def on_credits(message: Message, payments: Payments | None, replies: Replies, locale: Locale) -> None:
    if payments is None:
        return await _off(message, replies, locale)
    await payments.show_credits(message, locale)


async def on_paysupport(message: Message, payments: Payments | None, replies: Replies, locale: Locale) -> None:
    if payments is None:
        return await _off(message, replies, locale)
    await payments.paysupport(message, locale)


async def on_terms(message: Message, payments: Payments | None, replies: Replies, locale: Locale) -> None:
    if payments is None:
        return await _off(message, replies, locale)
    await payments.terms(message, locale)


async def on_refund(
    message: Message, command: CommandObject, payments: Payments | None, replies: Replies, locale: Locale
) -> None:
    if payments is None:
        return await _off(message, replies, locale)
    await payments.refund(message, command.args, locale)


def router() -> Router:
    r = Router(name="payments")
    r.message.register(on_paid, F.successful_payment)
    r.message.register(on_buy, Command("buy"))
    r.message.register(on_credits, Command("credits"))
    r.message.register(on_paysupport, Command("paysupport"))
    r.message.register(on_terms, Command("terms"))
    r.message.register(on_refund, Command("refund"))
    r.callback_query.register(on_pack, BuyPack.filter())
    r.pre_checkout_query.register(on_pre_checkout)
    return r
