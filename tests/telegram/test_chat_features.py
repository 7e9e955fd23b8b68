"""Through the real aiogram stack and the strict fake Bot API: a long paste split by the client,
inline mode, group chats."""

from __future__ import annotations

import asyncio

from adapters.sqlite.user_store import SqliteUserStore
from tests.telegram.helpers import Chat


def lighthouse_text(length: int) -> str:
    return ("a lighthouse on a cliff above a stormy sea, " * 200)[:length].strip()


async def test_a_split_paste_too_long_gets_one_answer(start_service, telegram):
    service = await start_service()
    text = lighthouse_text(5000)
    chat = Chat(telegram, 120)
    chat.mark = len(telegram.calls)
    parts = telegram.send_long_text(120, text)
    assert len(parts) == 2  # 4096 + 904 characters, as a client sends it
    [reply] = await chat.wait(lambda c: c.method == "sendMessage", timeout=10)
    assert f"too long: {len(text):,} characters, at most 1,000" in reply.text
    await asyncio.sleep(2.5)  # a second answer (for the 904-character tail) would be here by now
    assert [c.method for c in chat.since_mark()] == ["sendMessage"]
    assert await service.queue.backlog() == 0


async def test_a_split_paste_that_fits_makes_one_picture_of_the_whole(start_service, telegram):
    service = await start_service(max_prompt_chars=6000)
    text = lighthouse_text(5000)
    chat = Chat(telegram, 121)
    chat.mark = len(telegram.calls)
    telegram.send_long_text(121, text)
    [_photo] = await chat.photo(timeout=20)  # exactly one picture
    await asyncio.sleep(2.0)
    statuses = [c for c in chat.since_mark() if c.method == "sendMessage" and c.ok]
    assert len(statuses) == 1 and statuses[0].text.startswith("⏳ Queued")
    assert len([c for c in chat.since_mark() if c.method == "sendPhoto" and c.ok]) == 1
    store = SqliteUserStore(service.settings.sqlite_path)
    await store.start()
    try:
        [record] = await store.history(121, 5)
    finally:
        await store.stop()
    assert record.prompt == text  # the whole paste, not its tail
    # a short message right after a paste's tail is a prompt of its own
    assert "⏳ Queued" in await chat.ask("a small boat")


async def test_inline_mode_shares_recent_pictures_and_offers_to_draw(start_service, telegram):
    service = await start_service()
    me = Chat(telegram, 130)
    me.send("a red fox in the snow")
    [photo] = await me.photo(timeout=20)
    file_id = (
        photo.params.get("_message_id") and telegram.messages[int(photo.params["_message_id"])]["photo"][-1]["file_id"]
    )
    share = next(b for b in photo.buttons() if "switch_inline_query" in b)
    assert share["switch_inline_query"] == "a red fox in the snow"

    # @bot fox, in some group: the user's matching picture, by its file id, and "draw" as a button.
    # The picture's file id is recorded just after Telegram took the photo (the delivery's
    # bookkeeping): a query sent the same instant may find nothing yet, as a person's would not.
    for _ in range(20):
        query = telegram.inline_query(130, "fox")
        [answer] = await telegram.wait_for(
            lambda c, q=query: c.method == "answerInlineQuery" and c.params["inline_query_id"] == q
        )
        assert answer.ok, answer.error
        if answer.params["results"]:
            break
        await asyncio.sleep(0.25)
    [result] = answer.params["results"]
    assert result["type"] == "photo" and result["photo_file_id"] == file_id
    assert answer.params["is_personal"] in (True, "true")
    start = answer.params["button"]["start_parameter"]
    assert start.startswith("g") and "fox" in answer.params["button"]["text"]

    # somebody else's pictures are not offered; words that match nothing: no results
    query = telegram.inline_query(131, "fox")
    [other] = await telegram.wait_for(
        lambda c: c.method == "answerInlineQuery" and c.params["inline_query_id"] == query
    )
    assert other.ok and other.params["results"] == []
    query = telegram.inline_query(130, "whale")
    [none] = await telegram.wait_for(lambda c: c.method == "answerInlineQuery" and c.params["inline_query_id"] == query)
    assert none.ok and none.params["results"] == []

    # pressing "draw": Telegram opens the private chat with /start <parameter>
    query = telegram.inline_query(130, "an owl on a branch")
    [draw] = await telegram.wait_for(lambda c: c.method == "answerInlineQuery" and c.params["inline_query_id"] == query)
    me.send(f"/start {draw.params['button']['start_parameter']}")
    [owl] = await me.photo(timeout=20)
    assert owl.text.startswith("an owl on a branch")
    assert any(b.get("switch_inline_query") == "an owl on a branch" for b in owl.buttons())
    # a parameter used once is spent
    assert "expired" in await me.ask(f"/start {draw.params['button']['start_parameter']}")
    assert service.settings.telegram_mode == "polling"


async def test_group_commands_and_replies(start_service, telegram):
    await start_service(send_group_interval_s=0.2)
    group = -500
    telegram.send_text(401, "/txt2img@prompt2pic_bot a castle on a hill", chat_id=group)
    asked = max(mid for chat, mid in telegram.user_messages if chat == group)
    [photo] = await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == group and c.ok, timeout=20)
    assert photo.text.startswith("a castle on a hill")
    assert int(photo.params["reply_parameters"]["message_id"]) == asked  # answers the message that asked
    [status] = [c for c in telegram.calls_of("sendMessage", group) if c.ok and c.text.startswith("⏳")]
    assert int(status.params["reply_parameters"]["message_id"]) == asked
    assert not any("switch_inline_query" in b for b in photo.buttons())  # no "share" in a group

    # not for this bot: another bot's command, the group's own talk, a sticker
    before = len(telegram.calls_of("sendMessage", group))
    telegram.send_text(402, "/txt2img@other_bot a moon", chat_id=group)
    telegram.send_text(402, "hello everyone", chat_id=group)
    telegram.send_text(402, "/frobnicate", chat_id=group)
    await asyncio.sleep(1.5)
    assert len(telegram.calls_of("sendMessage", group)) == before
    assert len(telegram.calls_of("sendPhoto", group)) == 1

    # a reply to the bot's picture is a prompt; the new picture replies to that reply
    photo_id = int(photo.params["_message_id"])
    telegram.send_text(402, "a dragon over the castle", chat_id=group, reply_to=photo_id)
    reply_id = max(mid for chat, mid in telegram.user_messages if chat == group)
    [dragon] = await telegram.wait_for(
        lambda c: c.method == "sendPhoto" and c.chat_id == group and c.ok and c.text.startswith("a dragon"), timeout=20
    )
    assert int(dragon.params["reply_parameters"]["message_id"]) == reply_id
    # /help@bot in the group answers there
    telegram.send_text(402, "/help@prompt2pic_bot", chat_id=group)
    await telegram.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == group and "/txt2img" in c.text)


async def test_status_messages_follow_the_queue(start_service, telegram):
    from tests.telegram.helpers import HeldGenerator

    gen = HeldGenerator(marker="snail", max_batch=1)
    await start_service(
        generator=gen, queue_refresh_s=0.3, status_edit_interval_s=0.2, send_rate_per_chat=20, max_batch=1
    )
    me = Chat(telegram, 140)
    me.send("a slow snail")
    await asyncio.wait_for(gen.holding.wait(), 10)
    me.send("a turtle")
    turtle = await me.reply()
    me.send("a crab")
    crab = await me.reply()
    # a place counts the picture being drawn: the snail is first, the turtle second
    assert "position 2," in turtle.text and "position 3," in crab.text
    # the turtle is cancelled: the crab's status moves up to position 2 by itself
    me.press(int(turtle.params["_message_id"]), turtle.buttons()[0]["callback_data"])
    [moved] = await me.wait(
        lambda c: (
            c.method == "editMessageText"
            and "position 2," in c.text
            and int(c.params["message_id"]) == int(crab.params["_message_id"])
        ),
        timeout=10,
    )
    assert "a crab" in moved.text and moved.buttons()[0]["callback_data"].startswith("c:")  # still cancellable
    gen.release()
    await me.photo(timeout=20, count=2)
