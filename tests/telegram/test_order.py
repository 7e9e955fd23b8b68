"""Through the real aiogram stack and the strict fake Bot API: what one user sends in a burst is
answered in the order it was sent (statuses, command replies, status edits), no message is
deleted twice, and other chats are not held up by one chat's slow handling."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters.telegram.bot import build_bot
from adapters.telegram.sender import Sender
from tests.fakes.telegram import Call, FakeBotAPI
from tests.telegram.helpers import Chat, HeldGenerator

PROMPTS = ["a snail on a leaf", "a red fox", "a blue whale", "a green frog"]  # the snail is held
QUEUED = "⏳ Queued"
QUEUE_HEADER = "Your pictures in progress"
QUEUE_EMPTY = "You have no pictures in progress."
CANCEL_CHOOSE = "Which one should I cancel?"
CANCELLED_STATUS = "✖ Cancelled."


def burst(cancel: str) -> list[str]:
    """Three prompts, /queue, a prompt, /cancel, /queue: as the issue's user sent them."""
    return [PROMPTS[0], PROMPTS[1], PROMPTS[2], "/queue", PROMPTS[3], cancel, "/queue"]


def message_id_of_update(tg: FakeBotAPI, update_id: int) -> int:
    return int(next(u for u in tg._updates if u["update_id"] == update_id)["message"]["message_id"])


def answered(call: Call) -> int | None:
    reply = call.params.get("reply_parameters") or {}
    return int(reply["message_id"]) if "message_id" in reply else None


def what(call: Call, prompt_of: dict[int, str]) -> str:
    """What an answer of the bot is: "status: <prompt>", "queue" or "cancel"."""
    if call.text.startswith(QUEUED):
        return f"status: {prompt_of.get(answered(call) or 0, '?')}"
    if call.text.startswith((QUEUE_HEADER, QUEUE_EMPTY)):
        return "queue"
    if CANCEL_CHOOSE in call.text or call.text.startswith("✖ Cancelled"):
        return "cancel"
    return f"other: {call.text[:40]}"


def refused(tg: FakeBotAPI, *methods: str) -> list[tuple[str, str]]:
    return [(c.method, c.error) for c in tg.calls if not c.ok and c.method in methods]


async def wait_until(condition, timeout: float = 15.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("batch_size", "cancel"),
    [(None, "/cancel"), (1, "/cancel all")],
    ids=["one-getUpdates-batch", "successive-batches"],
)
async def test_a_burst_of_seven_messages_is_answered_in_order(start_service, telegram, batch_size, cancel):
    gen = HeldGenerator(marker="snail", max_batch=16)
    await start_service(generator=gen, send_rate_per_chat=5.0, user_rate_per_minute=100, max_jobs_in_flight_per_user=10)
    try:
        await _burst(telegram, gen, batch_size, cancel)
    finally:
        gen.release()


async def _burst(tg: FakeBotAPI, gen: HeldGenerator, batch_size: int | None, cancel: str) -> None:
    user = 401
    chat = Chat(tg, user)
    tg.batch_size = batch_size
    chat.mark = len(tg.calls)
    batches_before = len(tg.batches)
    texts = burst(cancel)
    update_ids = [tg.send_text(user, text) for text in texts]  # all at once: well within 50 ms
    message_ids = [message_id_of_update(tg, u) for u in update_ids]
    prompt_of = {m: t for m, t in zip(message_ids, texts, strict=True) if not t.startswith("/")}

    answers = await chat.wait(lambda c: c.method == "sendMessage", timeout=20, count=len(texts))
    batches = [ids for _, ids in tg.batches[batches_before:] if set(ids) & set(update_ids)]
    if batch_size is None:
        assert batches == [update_ids]  # one getUpdates answer carried all seven
    else:
        assert batches == [[u] for u in update_ids]  # seven answers, as fast as the bot polls
        times = [at for at, ids in tg.batches[batches_before:] if set(ids) & set(update_ids)]
        assert times[-1] - times[0] < 2.0

    # The answers come in the order of the messages they answer.
    assert [what(c, prompt_of) for c in answers] == [  # (the calls: [(c.method, c.text) for c in answers])
        f"status: {PROMPTS[0]}",
        f"status: {PROMPTS[1]}",
        f"status: {PROMPTS[2]}",
        "queue",
        f"status: {PROMPTS[3]}",
        "cancel",
        "queue",
    ]
    statuses = [answers[i] for i in (0, 1, 2, 4)]
    status_ids = [int(c.params["_message_id"]) for c in statuses]
    # The first /queue lists exactly the three prompts sent before it.
    first_queue = answers[3].text
    assert first_queue.startswith(f"{QUEUE_HEADER}: 3 ")
    assert all(p in first_queue for p in PROMPTS[:3]) and PROMPTS[3] not in first_queue
    if cancel == "/cancel":
        # /cancel sees the four jobs sent before it (a choice), and the last /queue lists them all.
        assert f"You have 4 pictures in progress. {CANCEL_CHOOSE}" == answers[5].text
        assert len(answers[5].buttons()) == 5  # one per job, and "all"
        assert answers[6].text.startswith(f"{QUEUE_HEADER}: 4 ")
        assert all(p in answers[6].text for p in PROMPTS)
    else:
        # /cancel all withdraws the four: each status says so, after the last status went out
        # and before the answer to /cancel; the last /queue finds nothing left.
        assert answers[5].text == "✖ Cancelled 4 pictures."
        edits = [c for c in chat.since_mark() if c.method == "editMessageText" and c.text.startswith(CANCELLED_STATUS)]
        assert sorted(int(c.params["message_id"]) for c in edits) == sorted(status_ids)
        for edit in edits:
            assert tg.calls.index(statuses[-1]) < tg.calls.index(edit) < tg.calls.index(answers[5])
        assert answers[6].text.startswith(QUEUE_EMPTY)

    # Every status ends once: the pictures (or the cancellations) come, each status is deleted,
    # and never a second time.
    gen.release()

    def deleted() -> list[int]:
        return [int(c.params["message_id"]) for c in tg.calls_of("deleteMessage", user)]

    await wait_until(lambda: set(status_ids) <= set(deleted()), 20, "the statuses to be deleted")
    await asyncio.sleep(1.0)  # a second delete of one of them would be here by now
    assert sorted(deleted()) == sorted(status_ids)
    assert refused(tg, "deleteMessage", "editMessageText") == []
    if cancel == "/cancel":
        photos = [c for c in chat.since_mark() if c.method == "sendPhoto" and c.ok]
        assert sorted(p for p in PROMPTS if any(c.text.startswith(p) for c in photos)) == sorted(PROMPTS)


async def test_one_chats_slow_handling_does_not_hold_up_another_chat(start_service, telegram):
    """A's first message may be the first part of a long paste: its handling waits
    ``split_join_s`` for a next part. A sticker A sends meanwhile is answered after it (in
    order); B, another chat, is answered at once."""
    await start_service(split_join_s=2.0, send_rate_per_chat=5.0)
    tg = telegram
    a, b = Chat(tg, 411), Chat(tg, 412)
    a.mark = b.mark = len(tg.calls)
    sent = time.monotonic()
    tg.send_text(411, "a lighthouse on a cliff above a stormy sea, " * 93)  # 4092 characters: a part?
    tg.send_sticker(411)
    tg.send_text(412, "/start")
    [b_answer] = await b.wait(lambda c: c.method == "sendMessage", timeout=10)
    assert b_answer.at - sent < 1.5  # not behind A's paste window
    a_answers = await a.wait(lambda c: c.method == "sendMessage", timeout=10, count=2)
    assert "too long: 4,091 characters" in a_answers[0].text and a_answers[0].at - sent >= 2.0
    assert "text prompts only" in a_answers[1].text  # the sticker, sent after the paste, answered after it
    assert tg.calls.index(b_answer) < tg.calls.index(a_answers[0])


async def test_flood_control_in_one_chat_holds_up_neither_its_buttons_nor_other_chats(start_service, telegram):
    """A's status reply waits out Telegram's flood control: meanwhile a button A presses is
    answered at once, B's prompt gets its status, and A's later edit still follows A's status."""
    service = await start_service(send_rate_per_chat=5.0)
    # A wait over 1 s in a chat's line counts as long here (10 s by default), so that a flood
    # control of 3 s shows it.
    service.parts.telegram.sender.pacer.hold_turn_s = 1.0
    tg = telegram
    a, b = Chat(tg, 421), Chat(tg, 422)
    a.send("/settings")
    panel = await a.reply()
    panel_id = int(panel.params["_message_id"])
    tg.fail("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    a.send("a red fox")
    await tg.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 421 and not c.ok, timeout=10)
    pressed = time.monotonic()
    query_id = tg.press(421, panel_id, "s:q:fast")
    b.send("a blue whale")
    [answer] = await tg.wait_for(
        lambda c: c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id, timeout=10
    )
    assert answer.at - pressed < 1.0  # not after A's flood wait
    b_status = await b.reply()
    assert b_status.text.startswith(QUEUED) and b_status.at - pressed < 1.0
    [a_status] = await a.wait(lambda c: c.method == "sendMessage", timeout=10)
    [a_edit] = await a.wait(lambda c: c.method == "editMessageText" and int(c.params["message_id"]) == panel_id)
    assert a_status.text.startswith(QUEUED) and a_status.at - pressed >= 2.0
    assert tg.calls.index(a_status) < tg.calls.index(a_edit)  # the press came after the prompt


async def test_a_prompt_cancelled_while_its_status_waits_out_flood_control_ends_once(start_service, telegram):
    """The status reply waits out flood control; /cancel, sent after the prompt, is handled
    meanwhile and cancels the job before its status is recorded. The status, once sent, is
    withdrawn (deleted) once, the job never reaches a worker, and /cancel's answer follows it."""
    service = await start_service(send_rate_per_chat=5.0)
    service.parts.telegram.sender.pacer.hold_turn_s = 1.0  # (as above)
    tg = telegram
    a = Chat(tg, 431)
    tg.fail("sendMessage", 429, "Too Many Requests: retry after 2", retry_after=2)
    a.send("a red fox")
    await tg.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 431 and not c.ok, timeout=10)
    tg.send_text(431, "/cancel")
    status, answer = await a.wait(lambda c: c.method == "sendMessage", timeout=10, count=2)
    assert status.text.startswith(QUEUED) and answer.text == "✖ Cancelled: a red fox"
    status_id = int(status.params["_message_id"])
    await a.wait(lambda c: c.method == "deleteMessage" and int(c.params["message_id"]) == status_id)
    await asyncio.sleep(2.0)  # a picture, or a second delete, would be here by now
    assert [int(c.params["message_id"]) for c in tg.calls_of("deleteMessage", 431)] == [status_id]
    assert refused(tg, "deleteMessage", "editMessageText") == []
    assert not [c for c in a.since_mark() if c.method in ("sendPhoto", "sendDocument")]
    assert [m["text"] for m in tg.visible(431)] == ["✖ Cancelled: a red fox"]  # the status is gone


async def test_the_sender_deletes_a_message_once_and_after_the_calls_queued_before(telegram):
    bot = build_bot(telegram.token, telegram.base_url)
    sender = Sender(bot, rate_per_chat=4.0)
    try:
        sent = await sender.send_message(5, "⏳ Queued")
        # the edit waits for the chat's pace (0.25 s), holding its place in the chat's line
        edit = asyncio.create_task(sender.edit_text(5, sent.message_id, "✖ Cancelled."))
        await asyncio.sleep(0)
        # two paths end the status at once (a withdrawal, a result settled): one delete goes,
        # after the edit queued before it
        await asyncio.gather(sender.delete(5, sent.message_id), sender.delete(5, sent.message_id))
        assert await edit is True
        await sender.delete(5, sent.message_id)  # and once more, later: nothing is sent
        assert await sender.edit_text(5, sent.message_id, "again") is False  # gone: not sent either
    finally:
        sender.close()
        await bot.session.close()
    assert [(c.method, c.ok) for c in telegram.calls] == [
        ("sendMessage", True),
        ("editMessageText", True),
        ("deleteMessage", True),
    ]
