"""Telegram Stars (``PAYMENTS=stars``): /buy with the operator's packs, the invoice (currency
``XTR``, one price, no provider token), the pre-checkout answer (Telegram waits 10 s), the
successful payment credited once, the admins' /refund, /paysupport and /terms that Telegram asks
of bots that sell, /credits. The rules are the domain's (``domain.use_cases.credits``); this
translates between them and the Bot API (``TelegramStars``: the ``StarPayments`` port)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
    TransactionPartnerUser,
)

from adapters.telegram.i18n import UiTexts
from adapters.telegram.options import BotOptions
from adapters.telegram.replies import Replies
from adapters.telegram.sender import Sender
from domain.credits import STARS_CURRENCY, CreditPack, StarPayment, pack_of_payload
from domain.errors import RecipientGone, RefundRefused
from domain.models import Locale
from domain.ports import CreditStore, UserStore
from domain.use_cases.credits import SellCredits

log = logging.getLogger(__name__)

# The Bot API's descriptions of refundStarPayment's refusals (MTProto payments.refundStarsCharge).
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
# Not documented for an unknown charge id: the refusal's own words are passed on to the admin.
CATCH_UP_WINDOW_S = 30 * 86400.0  # payments looked for by the catch-up (Telegram refunds within ~3 weeks)
TRANSACTIONS_PAGE = 100  # getStarTransactions' largest limit
MAX_PAGES = 100


class BuyPack(CallbackData, prefix="buy"):
    credits: int


@dataclass
class TelegramStars:
    """The ``StarPayments`` port on the Bot API: refundStarPayment and getStarTransactions."""

    bot: Bot

    async def refund(self, user_id: int, charge_id: str) -> None:
        try:
            await self.bot.refund_star_payment(user_id=user_id, telegram_payment_charge_id=charge_id)
        except TelegramBadRequest as exc:
            reason = "already_refunded" if ALREADY_REFUNDED in exc.message else exc.message
            raise RefundRefused(charge_id=charge_id, reason=reason) from None

    async def received(self, since: float) -> list[StarPayment]:
        """Incoming invoice payments since ``since`` that were not refunded, oldest first
        (getStarTransactions lists the bot's transactions in chronological order)."""
        incoming: dict[str, StarPayment] = {}
        refunded: set[str] = set()
        for page in range(MAX_PAGES):
            answer = await self.bot.get_star_transactions(offset=page * TRANSACTIONS_PAGE, limit=TRANSACTIONS_PAGE)
            for tx in answer.transactions:
                if isinstance(tx.receiver, TransactionPartnerUser):  # a refund to the user
                    refunded.add(tx.id)
                source = tx.source
                if not isinstance(source, TransactionPartnerUser) or tx.date.timestamp() < since:
                    continue
                pack = pack_of_payload(source.invoice_payload or "")
                if source.transaction_type == "invoice_payment" and pack is not None:
                    payload = source.invoice_payload or ""
                    incoming[tx.id] = StarPayment(
                        tx.id, source.user.id, tx.amount, pack.credits, payload, tx.date.timestamp()
                    )
            if len(answer.transactions) < TRANSACTIONS_PAGE:
                break
        return [p for charge, p in incoming.items() if charge not in refunded]


@dataclass
class Payments:
    sell: SellCredits
    credits: CreditStore
    sender: Sender
    replies: Replies
    t: UiTexts
    store: UserStore
    options: BotOptions
    support: str = ""  # PAYMENTS_SUPPORT
    terms_url: str = ""  # PAYMENTS_TERMS_URL
    catch_up_s: float = 300.0  # STARS_CATCH_UP_S
    clock: Callable[[], float] = field(default=time.time)

    # --- buying --------------------------------------------------------------------------------
    async def show_packs(self, message: Message, locale: Locale) -> None:
        user_id = message.from_user.id if message.from_user else message.chat.id
        rows = [
            [
                InlineKeyboardButton(
                    text=self.t(locale, "buy-pack-button", credits=pack.credits, stars=pack.stars),
                    callback_data=BuyPack(credits=pack.credits).pack(),
                )
            ]
            for pack in self.sell.packs
        ]
        text = self.t(locale, "buy-packs", credits=await self.credits.credits(user_id))
        markup = InlineKeyboardMarkup(inline_keyboard=rows)  # (in a group, their balance is theirs alone)
        await self.replies.reply(message.chat.id, text, markup=markup, private_to=user_id)

    async def send_invoice(self, query: CallbackQuery, credits: int, locale: Locale) -> None:
        """The invoice of the pack pressed: Stars (XTR), its one price, no provider token."""
        pack = next((p for p in self.sell.packs if p.credits == credits), None)
        await self.replies.answer(query, None if pack else self.t(locale, "pay-refused-unknown_pack"), alert=not pack)
        chat_id = query.message.chat.id if query.message else query.from_user.id
        if pack is None:
            return
        with contextlib.suppress(RecipientGone):
            await self.sender.call(chat_id, lambda: self._invoice(chat_id, pack, locale))

    async def _invoice(self, chat_id: int, pack: CreditPack, locale: Locale) -> Message:
        return await self.sender.bot.send_invoice(
            chat_id=chat_id,
            title=self.t(locale, "invoice-title", credits=pack.credits),
            description=self.t(locale, "invoice-description", credits=pack.credits),
            payload=pack.payload,
            currency=STARS_CURRENCY,
            prices=[LabeledPrice(label=self.t(locale, "invoice-label", credits=pack.credits), amount=pack.stars)],
            provider_token="",  # Stars: no payment provider
        )

    async def pre_checkout(self, query: PreCheckoutQuery, locale: Locale) -> None:
        """Answered at once (Telegram cancels the payment after 10 s): the pack still sold at
        that price in Stars, the user not banned; a refusal in the user's language."""
        user_id = query.from_user.id
        try:
            prefs = await self.store.get_prefs(user_id)
        except Exception as exc:  # the user cannot be checked: refused now, not left to time out
            log.warning("pre-checkout %s refused: the user store failed (%s)", query.id, type(exc).__name__)
            with contextlib.suppress(TelegramBadRequest):
                await query.answer(ok=False, error_message=self.t(locale, "pay-refused-unavailable"))
            return
        locale = prefs.locale or locale
        banned = prefs.banned and not self.options.is_admin(user_id)
        refusal = self.sell.check(
            payload=query.invoice_payload,
            currency=query.currency,
            total=query.total_amount,
            banned=banned,
            allowed=self.options.is_allowed(user_id),  # (an invoice can be forwarded to anyone)
        )
        try:
            if refusal is None:
                await query.answer(ok=True)
            else:
                await query.answer(ok=False, error_message=self.t(locale, f"pay-refused-{refusal.value}"))
        except TelegramBadRequest as exc:  # too late (past 10 s): Telegram cancelled the payment
            log.warning("pre-checkout %s not answered in time: %s", query.id, exc.message)
            return
        log.info("pre-checkout of user %s for %s: %s", user_id, query.invoice_payload, refusal or "accepted")

    async def paid(self, message: Message, locale: Locale) -> None:
        """A successful payment: its credits, once (the same message handed over again is
        credited no more); the buyer is thanked once."""
        sp = message.successful_payment
        assert sp is not None
        user_id = message.from_user.id if message.from_user else message.chat.id
        pack = pack_of_payload(sp.invoice_payload)
        if pack is None or sp.currency != STARS_CURRENCY:
            log.error(
                "payment %s of user %s names no pack (%r): not credited",
                sp.telegram_payment_charge_id,
                user_id,
                sp.invoice_payload,
            )
            await self.replies.reply(message.chat.id, self.t(locale, "pay-unknown"))
            return
        payment = StarPayment(
            sp.telegram_payment_charge_id,
            user_id,
            sp.total_amount,
            pack.credits,
            sp.invoice_payload,
            message.date.timestamp(),
        )
        if await self.sell.credit(payment):
            await self._thank(user_id, pack.credits, locale)

    async def _thank(self, user_id: int, credits: int, locale: Locale | None = None) -> None:
        """The buyer is told the credits arrived (in their private chat with the bot)."""
        if locale is None:
            locale = (await self.store.get_prefs(user_id)).locale or Locale.EN
        balance = await self.credits.credits(user_id)
        await self.replies.reply(user_id, self.t(locale, "pay-thanks", credits=credits, balance=balance))

    async def catch_up(self, stop: asyncio.Event) -> None:
        """At start and every ``catch_up_s``: credit paid Stars whose message was lost."""
        while not stop.is_set():
            try:
                for payment in await self.sell.catch_up(self.clock() - CATCH_UP_WINDOW_S):
                    await self._thank(payment.user_id, payment.credits)  # (their message never came)
            except Exception as exc:
                log.warning("the payments catch-up failed: %s", type(exc).__name__)
            if self.catch_up_s <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.catch_up_s)

    # --- the admins' refund ----------------------------------------------------------------------
    async def refund(self, message: Message, args: str | None, locale: Locale) -> None:
        admin = message.from_user.id if message.from_user else 0
        if not self.options.is_admin(admin):
            text = self.t(locale, "error-admins_only_command", command="/refund")
            await self.replies.reply(message.chat.id, text, private_to=admin)
            return
        words = (args or "").split()
        if len(words) != 1:
            await self.replies.reply(message.chat.id, self.t(locale, "refund-usage"), private_to=admin)
            return
        charge_id = words[0]
        try:
            done = await self.sell.refund(charge_id)
        except RefundRefused as exc:
            reason = str(exc.params.get("reason"))
            key = "refund-unknown" if reason == "unknown_charge" else "refund-refused"
            text = self.t(locale, key, charge_id=charge_id, reason=reason)
            await self.replies.reply(message.chat.id, text, private_to=admin)
            return
        refunded = done.refunded
        key = "refund-done" if refunded.first else "refund-already"
        log.info("admin %s refunded %s (%s)", admin, charge_id, key)
        text = self.t(
            locale,
            key,
            charge_id=charge_id,
            stars=refunded.payment.stars,
            user_id=str(refunded.payment.user_id),
            taken=refunded.taken_back,
            credits=refunded.payment.credits,
        )
        await self.replies.reply(message.chat.id, text, private_to=admin)  # (a user id, a charge id)

    # --- what Telegram asks of bots that sell, and the balance ---------------------------------------
    async def paysupport(self, message: Message, locale: Locale) -> None:
        contact = self.support or self.t(locale, "paysupport-here")
        await self.replies.reply(message.chat.id, self.t(locale, "paysupport", contact=contact))

    async def terms(self, message: Message, locale: Locale) -> None:
        text = self.t(locale, "terms")
        if self.terms_url:
            text += "\n" + self.t(locale, "terms-more", url=self.terms_url)
        await self.replies.reply(message.chat.id, text)

    async def balance_text(self, user_id: int, locale: Locale) -> str:
        """The credits line of /balance (and all of /credits)."""
        return self.t(locale, "credits-balance", credits=await self.credits.credits(user_id))

    async def show_credits(self, message: Message, locale: Locale) -> None:
        user_id = message.from_user.id if message.from_user else message.chat.id
        await self.replies.reply(message.chat.id, await self.balance_text(user_id, locale), private_to=user_id)
