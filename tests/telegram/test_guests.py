"""Guest mode (Bot API 10.0) and private replies in groups (Bot API 10.2), through the real aiogram
stack, the real composition root and ``app.serve`` against the strict fake Bot API server.

- "@bot <prompt>" in a group the bot is not a member of: the status is posted as the answer to the
  guest query and edited in place into the picture with its buttons (nothing is sent to that
  chat by its id: the fake refuses that, as Telegram does); the caller owns the job, so another
  user's presses (cancel, new seed, variations, original, report) get "not yours" and nothing.
- A refused prompt, and a refused user, get a short answer to the query instead.
- In a group, a limit error reaches only its user (an ephemeral message), and goes to the chat
  as before when Telegram refuses the ephemeral one."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.fakes.telegram import Call, FakeBotAPI
from tests.telegram.helpers import HeldGenerator

GUEST_CHAT = -880  # a group the bot is not a member of
OWNER, OTHER = 801, 802
SECRET = "xyzzy"


async def answers_of(tg: FakeBotAPI, query_id: str) -> list[Call]:
    await tg.wait_for(lambda c: c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id)
    await asyncio.sleep(0.2)
    return [c for c in tg.calls if c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id]


async def guest_answer(tg: FakeBotAPI, query_id: str) -> Call:
    [call] = await tg.wait_for(lambda c: c.method == "answerGuestQuery" and c.params["guest_query_id"] == query_id)
    return call


async def until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def keyboard(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def test_a_guest_query_ends_with_the_picture_in_place_and_only_its_caller_acts_on_it(start_service, telegram):
    tg = telegram
    service = await start_service(admin_chat_id=-100555)
    store = service.parts.telegram.store
    query = tg.guest_query(OWNER, f"@prompt2pic_bot a {SECRET} fox in the snow --ar 16:9 --seed 7", chat_id=GUEST_CHAT)

    status = await guest_answer(tg, query)
    assert status.ok and status.params["result"]["type"] == "article"
    assert "Queued" in status.params["result"]["input_message_content"]["message_text"]
    inline_id = status.params["_inline_message_id"]
    await until(lambda: "photo" in tg.inline_messages[inline_id])

    # the posted message became the picture, with its buttons: the copy button holds the prompt
    picture = tg.inline_messages[inline_id]
    assert picture["caption"].startswith(f"a {SECRET} fox in the snow") and "seed 7" in picture["caption"]
    buttons = keyboard(picture)
    actions = [b["callback_data"].split(":")[1] for b in buttons if "callback_data" in b]
    assert actions == ["new", "var", "png", "rep"]
    [copy] = [b["copy_text"]["text"] for b in buttons if "copy_text" in b]
    assert copy == f"a {SECRET} fox in the snow --ar 7:4 --seed 7"  # (the ratio of the size 16:9 gave)
    # nothing went to the guest chat by its id (the bot is not in it: Telegram would refuse)
    assert [c for c in tg.calls if c.chat_id == GUEST_CHAT] == []
    # the file Telegram needed first: the caller's own copy, in their private chat
    [upload] = [c for c in tg.calls_of("sendPhoto", OWNER) if c.ok]
    assert picture["photo"] in tg.file_ids and upload.text == picture["caption"]
    job_id = actions and buttons[0]["callback_data"].split(":")[-1]
    record = await store.get_job(job_id)
    assert (record.user_id, record.chat_id, record.inline_message_id) == (OWNER, GUEST_CHAT, inline_id)
    assert record.status_message_id is None and record.state.value == "done"

    # someone else in that chat: every button of the picture says "not yours", and nothing happens
    mark, jobs_before = len(tg.calls), await store.history(OWNER, 10)
    for data in [b["callback_data"] for b in buttons if "callback_data" in b] + [f"c:{job_id}"]:
        [answer] = await answers_of(tg, tg.press_inline(OTHER, inline_id, data))
        assert "not yours" in answer.params["text"].lower(), data
    await asyncio.sleep(0.3)
    assert [c.method for c in tg.calls[mark:] if c.method != "answerCallbackQuery"] == []
    assert not any(SECRET in c.text for c in tg.calls[mark:])
    assert await store.history(OWNER, 10) == jobs_before and await store.active_jobs(OTHER) == []
    assert tg.inline_messages[inline_id] == picture  # unchanged

    # the caller: their original PNG, in their private chat
    answer_id = tg.press_inline(
        OWNER, inline_id, next(b["callback_data"] for b in buttons if ":png:" in b["callback_data"])
    )
    [document] = await tg.wait_for(lambda c: c.method == "sendDocument" and c.chat_id == OWNER and c.ok)
    assert "original" in (await answers_of(tg, answer_id))[0].params["text"].lower()
    assert document.files["document"]


async def test_only_the_caller_cancels_a_guest_job(start_service, telegram):
    tg = telegram
    gen = HeldGenerator(marker="snail")
    service = await start_service(generator=gen)
    try:
        query = tg.guest_query(OWNER, "@prompt2pic_bot a slow snail on a leaf", chat_id=GUEST_CHAT)
        inline_id = (await guest_answer(tg, query)).params["_inline_message_id"]
        await asyncio.wait_for(gen.holding.wait(), 10)
        [cancel] = [b["callback_data"] for b in keyboard(tg.inline_messages[inline_id]) if "callback_data" in b]
        [answer] = await answers_of(tg, tg.press_inline(OTHER, inline_id, cancel))
        assert "not yours" in answer.params["text"].lower()
        assert len(await service.parts.telegram.store.active_jobs(OWNER)) == 1
        tg.press_inline(OWNER, inline_id, cancel)
        await until(lambda: "Cancelled" in (tg.inline_messages[inline_id].get("text") or ""), 10)
        assert await service.parts.telegram.store.active_jobs(OWNER) == []
        assert [c for c in tg.calls if c.chat_id == GUEST_CHAT] == []
    finally:
        gen.release()


async def test_a_refused_prompt_and_a_banned_user_get_a_short_answer_to_the_query(start_service, telegram):
    tg = telegram
    service = await start_service()
    query = tg.guest_query(OWNER, "@prompt2pic_bot a cat --seed -3", chat_id=GUEST_CHAT, language_code="ru")
    answer = await guest_answer(tg, query)
    assert answer.ok and "seed" in answer.params["result"]["input_message_content"]["message_text"]
    assert "целым числом" in answer.params["result"]["input_message_content"]["message_text"]  # their language

    await service.parts.telegram.store.ban(OTHER, 0.0)
    query = tg.guest_query(OTHER, "@prompt2pic_bot a dog", chat_id=GUEST_CHAT)
    answer = await guest_answer(tg, query)
    assert answer.params["result"]["input_message_content"]["message_text"] == "🚫 I can't draw for you."
    await asyncio.sleep(0.3)
    assert await service.parts.telegram.store.active_jobs(OTHER) == []
    assert [c for c in tg.calls if c.chat_id == GUEST_CHAT] == []


async def test_a_limit_error_in_a_group_reaches_only_its_user(start_service, telegram):
    tg = telegram
    gen = HeldGenerator(marker="snail")
    await start_service(generator=gen, max_jobs_in_flight_per_user=1, send_group_interval_s=0.1)
    group, user = -890, 811
    try:
        tg.send_text(user, "/txt2img@prompt2pic_bot a slow snail", chat_id=group)
        await asyncio.wait_for(gen.holding.wait(), 10)
        tg.send_text(user, "/txt2img@prompt2pic_bot a second snail", chat_id=group)
        [error] = await tg.wait_for(lambda c: c.method == "sendMessage" and "in progress" in c.text and c.ok)
        assert error.params["ephemeral_message_parameters"]["receiver_user_id"] == user
        assert [m["text"] for m in tg.ephemerals_to(group, user)] == [error.params["text"]]
        assert not any("in progress" in (m.get("text") or "") for m in tg.visible(group))  # the group sees none

        # Telegram refuses the ephemeral message (the user is not a participant to it): as before, in the chat
        tg.fail("sendMessage", 400, "Bad Request: USER_NOT_PARTICIPANT")
        mark = len(tg.calls)
        tg.send_text(user, "/txt2img@prompt2pic_bot a third snail", chat_id=group)
        await tg.wait_for(lambda c: tg.calls.index(c) > mark and c.method == "sendMessage" and c.ok)
        sent = [c for c in tg.calls[mark:] if c.method == "sendMessage"]
        assert [c.ok for c in sent] == [False, True] and "ephemeral_message_parameters" in sent[0].params
        assert "ephemeral_message_parameters" not in sent[1].params and "in progress" in sent[1].text
        assert any("in progress" in (m.get("text") or "") for m in tg.visible(group))
    finally:
        gen.release()


async def test_a_guest_job_in_a_private_chat_is_not_shared_with_the_other_users_own_chat(start_service, telegram):
    """A guest query in the private chat of OWNER and OTHER carries OTHER's user id as its chat id,
    the id of OTHER's own chat with the bot too ("may not coincide with other existing bot chats
    sharing the same identifier", the Bot API says): OTHER's chat with the bot is not where the
    guest job was asked for. OTHER cannot act on it from there with forged callback data, and
    OTHER having blocked the bot neither drops the caller's picture nor is forgotten."""
    tg = telegram
    service = await start_service()
    store = service.parts.telegram.store
    tg.send_text(OTHER, "/start")
    [hello] = await tg.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == OTHER and c.ok)
    await store.mark_blocked(OTHER, 1.0)  # (blocked the bot since: the bot found out on a send)
    service.parts.telegram.sender.calls.unreachable.add(OTHER)
    query = tg.guest_query(OWNER, f"@prompt2pic_bot a {SECRET} owl on a branch", chat_id=OTHER)
    inline_id = (await guest_answer(tg, query)).params["_inline_message_id"]
    await until(lambda: "photo" in tg.inline_messages[inline_id])
    assert await store.is_blocked(OTHER)  # a guest query in a chat with OTHER is not OTHER writing to the bot
    buttons = keyboard(tg.inline_messages[inline_id])
    job_id = buttons[0]["callback_data"].split(":")[-1]
    assert (await store.get_job(job_id)).chat_id == OTHER

    mark = len(tg.calls)
    for data in [b["callback_data"] for b in buttons if "callback_data" in b]:
        [answer] = await answers_of(tg, tg.press(OTHER, hello.params["_message_id"], data))
        assert "not yours" in answer.params["text"].lower(), data
    await asyncio.sleep(0.3)
    assert [c.method for c in tg.calls[mark:] if c.method != "answerCallbackQuery"] == []
    assert await store.active_jobs(OTHER) == [] and await store.history(OTHER, 10) == []


def test_the_guest_prompt_is_the_text_without_the_mention():
    """People write "@bot, a cat" or "@bot: a cat" as often as "@bot a cat": the mention goes with
    the punctuation that follows it; anything else stays as written."""
    from adapters.telegram.guests import without_mention

    assert without_mention("@Prompt2Pic_bot a cat --seed 3", "prompt2pic_bot") == "a cat --seed 3"
    assert without_mention("@prompt2pic_bot, a cat", "prompt2pic_bot") == "a cat"
    assert without_mention("@prompt2pic_bot: a cat", "prompt2pic_bot") == "a cat"
    assert without_mention("a cat, @prompt2pic_bot!", "prompt2pic_bot") == "a cat,"
    assert without_mention("a cat like @prompt2pic_botter", "prompt2pic_bot") == "a cat like @prompt2pic_botter"
