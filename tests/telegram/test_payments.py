"""Telegram Stars through the real aiogram stack against the strict fake Bot API (PAYMENTS=stars):
/buy, the invoice, the pre-checkout answer and the payment credited exactly once (the payment's
update handed over twice; its message lost, as with a bot killed between the payment and the
credit, and credited from getStarTransactions at the next start); a credit spent on a prompt and
given back by itself when the picture fails; a banned user's pre-checkout refused in their
language; an admin's /refund that returns the Stars and takes back what was not spent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from adapters.embedded.generator import FakeGenerator
from domain.credits import LedgerKind, StarPayment
from domain.models import GeneratedImage, GenerationRequest
from domain.ports import ProgressCallback
from tests.fakes.telegram.payments import CHARGE_ALREADY_REFUNDED
from tests.telegram.helpers import Chat

ADMIN = 90
USER = 4242


class BrokenSometimes(FakeGenerator):
    """The fake generator, failing every batch with "broken" in a prompt."""

    async def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GeneratedImage]:
        if any("broken" in r.prompt for r in requests):
            raise RuntimeError("the model broke")
        return await super().generate(requests, progress)


async def selling(start_service, **overrides):
    return await start_service(
        payments="stars", stars_packs="10:50,50:200", admin_ids={ADMIN}, stars_catch_up_s=0, **overrides
    )


async def invoice_for(chat: Chat, button: str = "10 ") -> int:
    """/buy, then the pack's button: the invoice's message id."""
    chat.send("/buy")
    packs = await chat.reply()
    assert "You have 0" in packs.text or "You have" in packs.text
    data = packs.button(button)["callback_data"]
    chat.press(packs.params["_message_id"], data)
    [sent] = await chat.wait(lambda c: c.method == "sendInvoice")
    assert sent.params["currency"] == "XTR" and not sent.params.get("provider_token")
    return int(sent.params["_message_id"])


async def buy(chat: Chat, button: str = "10 ") -> str:
    """A whole purchase as the user makes it; the charge id."""
    message_id = await invoice_for(chat, button)
    chat.mark = len(chat.tg.calls)
    query_id = chat.tg.pay(chat.user_id, message_id, language_code=chat.lang)
    await chat.tg.wait_for(lambda c: c.method == "answerPreCheckoutQuery" and c.ok)
    charge = chat.tg.charge_of(query_id)
    assert charge is not None
    await chat.wait(lambda c: c.method == "sendMessage" and "credits added" in c.text)
    return charge


async def test_a_purchase_is_credited_once_even_when_its_update_comes_twice(start_service, telegram):
    service = await selling(start_service)
    store = service.parts.telegram.store
    chat = Chat(telegram, USER)
    charge = await buy(chat)
    [answer] = telegram.calls_of("answerPreCheckoutQuery")
    assert answer.params["ok"] in (True, "true")
    assert telegram.invoice_texts and all(len(t) <= 32 and len(d) <= 255 for t, d in telegram.invoice_texts)
    telegram.hand_over_again(charge)  # a webhook retried, a bot that had not confirmed it
    telegram.hand_over_again(charge)
    assert "Credits: 10" in await chat.ask("/credits")  # one chat's updates in order: both handled before
    thanks = [c for c in telegram.messages_to(USER) if "credits added" in c.text]
    assert len(thanks) == 1
    assert await store.credits(USER) == 10
    assert [e.kind for e in await store.ledger(USER)] == [LedgerKind.PURCHASE]
    menu = [c for c in telegram.calls_of("setMyCommands") if c.ok]
    assert any("buy" in str(c.params.get("commands")) for c in menu)


async def test_a_failed_paid_picture_gives_its_credit_back(start_service, telegram):
    service = await selling(start_service, generator=BrokenSometimes())
    store = service.parts.telegram.store
    chat = Chat(telegram, USER)
    await buy(chat)
    chat.send("a broken lighthouse")
    await chat.wait(lambda c: "could not make that picture" in c.text, timeout=20)
    for _ in range(100):  # the credit comes back as the failure is recorded
        if await store.credits(USER) == 10:
            break
        await asyncio.sleep(0.05)
    kinds = [e.kind for e in await store.ledger(USER)]
    assert kinds == [LedgerKind.PURCHASE, LedgerKind.SPEND, LedgerKind.GIVE_BACK]
    assert await store.credits(USER) == 10
    chat.send("a calm lighthouse")
    await chat.photo(timeout=20)
    assert await store.credits(USER) == 9  # a picture keeps its credit spent
    [paid] = await store.history(USER, 10)
    assert paid.paid_credit


async def test_a_banned_users_pre_checkout_is_refused_in_their_language(start_service, telegram):
    await selling(start_service)
    user = Chat(telegram, USER, lang="ru")
    user.send("/buy")
    packs = await user.reply()
    user.press(packs.params["_message_id"], packs.button("10 ")["callback_data"])
    [sent] = await user.wait(lambda c: c.method == "sendInvoice")
    admin = Chat(telegram, ADMIN)
    assert "blocked" in await admin.ask(f"/ban {USER}")
    query_id = telegram.pay(USER, int(sent.params["_message_id"]), language_code="ru")
    [answer] = await telegram.wait_for(lambda c: c.method == "answerPreCheckoutQuery" and c.ok)
    assert answer.params["ok"] in (False, "false")
    assert "закрыт доступ" in answer.params["error_message"]
    assert telegram.charge_of(query_id) is None and telegram.stars_spent == {}


async def test_an_unknown_pack_is_refused_at_pre_checkout(start_service, telegram):
    await selling(start_service)
    chat = Chat(telegram, USER)
    message_id = await invoice_for(chat)
    telegram.invoices[message_id]["total_amount"] = 1  # a forged price: not what the pack costs
    query_id = telegram.pay(USER, message_id)
    [answer] = await telegram.wait_for(lambda c: c.method == "answerPreCheckoutQuery" and c.ok)
    assert answer.params["ok"] in (False, "false") and "not sold at this price" in answer.params["error_message"]
    assert telegram.charge_of(query_id) is None


async def test_refund_returns_the_stars_and_takes_back_the_credits_not_spent(start_service, telegram):
    service = await selling(start_service)
    store = service.parts.telegram.store
    chat = Chat(telegram, USER)
    charge = await buy(chat)
    chat.send("a lighthouse at dawn")
    await chat.photo(timeout=20)
    assert await store.credits(USER) == 9
    admin = Chat(telegram, ADMIN)
    assert "for the bot's admins" in await chat.ask(f"/refund {charge}")  # not an admin
    assert "Usage" in await admin.ask("/refund")
    assert "No payment" in await admin.ask("/refund stxNOPE")
    done = await admin.ask(f"/refund {charge}")
    assert "Refunded 50" in done and "9 of its 10 credits taken back" in done
    [refund] = [c for c in telegram.calls_of("refundStarPayment") if c.ok]
    assert int(refund.params["user_id"]) == USER and refund.params["telegram_payment_charge_id"] == charge
    assert telegram.stars_spent[USER] == 0 and telegram.charges[charge]["refunded"]
    assert await store.credits(USER) == 0
    again = await admin.ask(f"/refund {charge}")
    assert "refunded already" in again
    assert [c.error for c in telegram.calls_of("refundStarPayment")][-1] == CHARGE_ALREADY_REFUNDED
    assert [e.kind for e in await store.ledger(USER)] == [LedgerKind.PURCHASE, LedgerKind.SPEND, LedgerKind.REFUND]


async def test_a_payment_whose_message_was_lost_is_credited_at_the_next_start(start_service, telegram):
    """The bot died between the payment and the credit (polling had confirmed the update, or
    the process went first): the next start reads getStarTransactions and credits it, once."""
    first = await selling(start_service)
    chat = Chat(telegram, USER)
    message_id = await invoice_for(chat)
    telegram.lose_payment_messages = True
    query_id = telegram.pay(USER, message_id)
    await telegram.wait_for(lambda c: c.method == "answerPreCheckoutQuery" and c.ok)
    assert telegram.charge_of(query_id) is not None
    first.stop.set()
    assert await asyncio.wait_for(first.task, 30) == 0
    restarted = time.monotonic()
    second = await selling(start_service)
    # (start_service saw the first bot's calls: wait for the second's own start)
    await telegram.wait_for(lambda c: c.method == "deleteWebhook" and c.at > restarted, timeout=60)
    store = second.parts.telegram.store
    await telegram.wait_for(lambda c: c.method == "getStarTransactions" and c.at > restarted, timeout=30)
    for _ in range(200):
        if await store.credits(USER) == 10:
            break
        await asyncio.sleep(0.05)
    assert await store.credits(USER) == 10
    third_look = await second.parts.telegram.dispatcher["payments"].sell.catch_up(0)
    assert third_look == []  # credited once
    # the thanks goes out after the credit: wait for it, or /credits would read it as its answer
    await telegram.wait_for(lambda c: c.chat_id == USER and "credits added" in c.text and c.at > restarted)
    assert "Credits: 10" in await chat.ask("/credits")
    thanks = [c for c in telegram.messages_to(USER) if "credits added" in c.text]
    assert len(thanks) == 1  # told by the catch-up, their payment's message never came


async def test_a_user_banned_after_paying_is_credited_all_the_same(start_service, telegram):
    """The pre-checkout was accepted and the Stars taken; an admin bans the user before the
    payment's message reaches the bot: the bot ignores the banned user's messages, but not the
    payment (the credits are theirs)."""
    service = await selling(start_service)
    store = service.parts.telegram.store
    chat = Chat(telegram, USER)
    message_id = await invoice_for(chat)
    telegram.lose_payment_messages = True  # held back: delivered below, after the ban
    query_id = telegram.pay(USER, message_id)
    await telegram.wait_for(lambda c: c.method == "answerPreCheckoutQuery" and c.ok)
    admin = Chat(telegram, ADMIN)
    assert "blocked" in await admin.ask(f"/ban {USER}")
    charge = telegram.charge_of(query_id)
    assert charge is not None
    chat.mark = len(telegram.calls)
    telegram.hand_over_again(charge)
    await chat.wait(lambda c: c.method == "sendMessage" and "credits added" in c.text)
    assert await store.credits(USER) == 10


async def test_in_a_group_a_users_credits_reach_only_that_user(start_service, telegram):
    """/credits and /buy (which says the balance) in a group concern one user only: ephemeral
    messages (Bot API 10.2), like /queue and /history; so is an admin's /refund (a user id, a
    charge id and an amount): the group sees none of them."""
    service = await selling(start_service)
    await service.parts.telegram.store.credit_purchase(
        StarPayment("stxSECRETCHARGE", USER, 50, 10, "credits:10:50", time.time())
    )
    group = -4300
    telegram.send_text(USER, "/credits@prompt2pic_bot", chat_id=group)
    [balance] = await telegram.wait_for(lambda c: c.method == "sendMessage" and "Credits: 10" in c.text and c.ok)
    assert balance.params["ephemeral_message_parameters"]["receiver_user_id"] == USER
    telegram.send_text(USER, "/buy@prompt2pic_bot", chat_id=group)
    [packs] = await telegram.wait_for(lambda c: c.method == "sendMessage" and "You have 10" in c.text and c.ok)
    assert packs.params["ephemeral_message_parameters"]["receiver_user_id"] == USER
    telegram.send_text(ADMIN, "/refund@prompt2pic_bot stxSECRETCHARGE", chat_id=group)
    [done] = await telegram.wait_for(lambda c: c.method == "sendMessage" and "stxSECRETCHARGE" in c.text and c.ok)
    assert done.params["ephemeral_message_parameters"]["receiver_user_id"] == ADMIN
    seen = [m.get("text") or "" for m in telegram.visible(group)]
    assert not any("Credits" in text or "stx" in text for text in seen)


async def test_a_pre_checkout_the_store_cannot_check_is_refused_at_once_in_their_language(start_service, telegram):
    """The user store down at the pre-checkout: the query is still answered within Telegram's 10 s,
    refused with a word the buyer can act on, rather than left to time out with nothing said."""
    service = await selling(start_service)
    message_id = await invoice_for(Chat(telegram, USER))
    store = service.parts.telegram.store

    async def down(user_id: int) -> None:
        raise ConnectionError("the database is down")

    store.get_prefs = down
    query_id = telegram.pay(USER, message_id, language_code="ru")
    [answer] = await telegram.wait_for(lambda c: c.method == "answerPreCheckoutQuery", timeout=5.0)
    assert answer.ok and answer.params["ok"] in (False, "false")
    assert "позже" in answer.params["error_message"]
    assert telegram.charge_of(query_id) is None
