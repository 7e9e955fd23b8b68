"""Nobody reaches what is not theirs: every kind of button pressed by someone else with the owner's
exact callback data (a modified client can send any) gets a polite answer in the presser's
language and nothing of the owner's: no file, no prompt text, no change to any job, no new job.
In a group the members share the group's picture buttons, a user elsewhere does not, and cancel
stays the owner's. Also: the Report button only when someone receives reports, an answer for
every press (unknown data included), and one answer for a picture the bot no longer knows.

Through the real aiogram stack, the real composition root and ``app.serve``, against the strict
fake Bot API server, with the SQLite user store."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.fakes.telegram import Call, FakeBotAPI
from tests.telegram.helpers import Chat, HeldGenerator

ADMIN = 950
SECRET = "xyzzy"  # a word of the owner's prompts: it must reach nobody else
FILES = ("sendPhoto", "sendDocument", "sendMediaGroup")
NOT_YOURS = {"en": "this picture is not yours", "ru": "это не ваша картинка"}


async def answered(tg: FakeBotAPI, query_id: str) -> list[Call]:
    """The answers of one callback query, once there is one (and a moment for a second)."""
    await tg.wait_for(lambda c: c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id)
    await asyncio.sleep(0.2)
    return [c for c in tg.calls if c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id]


async def all_jobs(service: Any) -> list[tuple]:
    store = service.parts.telegram.store
    return [tuple(row) for row in await store.db.read("SELECT * FROM jobs ORDER BY job_id")]


async def a_message(chat: Chat) -> int:
    """The id of a message of the bot in ``chat``'s own chat (a press goes under it)."""
    chat.send("/help")
    return int((await chat.reply()).params["_message_id"])


async def inline_answer(tg: FakeBotAPI, query_id: str) -> list[Call]:
    return await tg.wait_for(lambda c: c.method == "answerInlineQuery" and c.params["inline_query_id"] == query_id)


def callbacks(call: Call) -> list[str]:
    return [b["callback_data"] for b in call.buttons() if "callback_data" in b]


def leaked(tg: FakeBotAPI, chats: set[int], since: int) -> list[str]:
    """What reached ``chats`` since call ``since`` that is the owner's: a file, or the prompt's
    word in a message, an edit or a callback answer (answers carry no chat id: all of them)."""
    found = []
    for c in tg.calls[since:]:
        if c.method in FILES and c.chat_id in chats:
            found.append(c.method)
        if SECRET in c.text and (c.chat_id in chats or c.method == "answerCallbackQuery"):
            found.append(f"{c.method}: {c.text[:60]}")
    return found


async def test_someone_elses_buttons_give_nothing_in_private_chats(start_service, telegram):
    gen = HeldGenerator(marker="snail")
    service = await start_service(generator=gen, admin_ids=str(ADMIN), variations=2, album_wait_s=10)
    try:
        await private_chats(service, telegram, gen)
    finally:
        gen.release()


async def private_chats(service: Any, telegram: FakeBotAPI, gen: HeldGenerator) -> None:
    tg = telegram
    owner, other = Chat(tg, 601), Chat(tg, 602, "ru")

    # the owner's pictures and every keyboard they come with
    owner.send(f"a {SECRET} garden at dawn")
    [photo] = await owner.photo()
    photo_id = int(photo.params["_message_id"])
    data = callbacks(photo)
    actions = {d.split(":")[1] for d in data}
    assert actions == {"new", "var", "png", "rep"}, data
    png = next(d for d in data if d.startswith("r:png:"))
    owner.press(photo_id, next(d for d in data if d.startswith("r:var:")))
    [follow] = await owner.wait(lambda c: c.method == "sendMessage" and c.text.startswith("🎲"), timeout=20)
    data += callbacks(follow)  # the album's new seed and PNG buttons
    owner.send("/history")
    history = await owner.reply()
    data += callbacks(history)  # its PNG buttons
    owner.send("/settings")
    data += ["s:q:fast", "s:as:document", "s:lang:ru", "s:tr:off"]  # as under the owner's panel
    await owner.reply()
    owner.send(f"a {SECRET} snail")  # held while drawing: a job that can still be cancelled
    status = await owner.reply()
    await asyncio.wait_for(gen.holding.wait(), 10)
    await owner.wait(lambda c: c.method == "editMessageText" and "%" in c.text)  # its progress is shown
    cancel = callbacks(status)
    assert cancel and cancel[0].startswith("c:")
    data += cancel
    assert len(data) >= 10 and {d[:2] for d in data} == {"r:", "s:", "c:"}
    owner_prefs = await service.parts.telegram.store.get_prefs(601)
    await asyncio.sleep(0.5)  # the album's pictures and clean-ups are done
    before, jobs_before = len(tg.calls), await all_jobs(service)

    # the other user presses every one of them, under a message of their own chat
    here = await a_message(other)
    answers = {}
    for d in data:
        answers[d] = [c.params.get("text", "") for c in await answered(tg, other.press(here, d))]
    # inline mode: the owner's pictures are not offered to the other, nor the owner's "draw" button
    [offered] = await inline_answer(tg, tg.inline_query(602, SECRET))
    assert offered.ok and offered.params["results"] == []
    [drawn] = await inline_answer(tg, tg.inline_query(601, SECRET))
    assert drawn.params["results"]  # the owner's own picture is offered to them
    start = drawn.params["button"]["start_parameter"]
    assert "запрос устарел" in await other.ask(f"/start {start}")  # not a job of the owner's prompt
    await asyncio.sleep(0.5)
    for d, texts in answers.items():
        assert len(texts) == 1, (d, texts)  # one answer each
        if d.startswith(("r:", "c:")):
            assert NOT_YOURS["ru"] in texts[0].lower(), (d, texts)  # in the presser's language
    assert leaked(tg, {602}, before) == []
    assert await all_jobs(service) == jobs_before  # no job changed, none added (no new seed queued)
    assert await service.parts.telegram.store.get_prefs(601) == owner_prefs
    assert [c for c in tg.calls[before:] if c.chat_id == 601] == []  # the owner's chat untouched

    # the owner pressing the same buttons does get them: the original, and the cancel
    mark = len(tg.calls)
    qid = owner.press(photo_id, png)
    [document] = await owner.wait(lambda c: c.method == "sendDocument")
    assert document.files["document"] == (await asyncio.to_thread(_stored, service, png.split(":")[-1]))
    assert len(await answered(tg, qid)) == 1
    owner.press(int(status.params["_message_id"]), cancel[0])
    await owner.wait(lambda c: c.method == "editMessageText" and "Cancelled" in c.text)
    assert leaked(tg, {602}, mark) == []


def _stored(service: Any, job_id: str) -> bytes:
    return (service.settings.local_storage_dir / "images" / f"{job_id}.png").read_bytes()


async def test_a_groups_buttons_are_its_members_and_cancel_stays_the_owners(start_service, telegram):
    gen = HeldGenerator(marker="snail")
    service = await start_service(generator=gen, admin_ids=str(ADMIN), send_group_interval_s=0.1)
    try:
        await in_a_group(service, telegram, gen)
    finally:
        gen.release()


async def in_a_group(service: Any, telegram: FakeBotAPI, gen: HeldGenerator) -> None:
    tg, group = telegram, -700
    owner, member, outsider = 701, 702, 703

    tg.send_text(owner, f"/txt2img@prompt2pic_bot a {SECRET} castle", chat_id=group)
    [photo] = await tg.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == group and c.ok, timeout=20)
    photo_id = int(photo.params["_message_id"])
    data = callbacks(photo)
    png = next(d for d in data if d.startswith("r:png:"))
    tg.send_text(owner, "/settings", chat_id=group)
    [panel] = await tg.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == group and "⚙️" in c.text)
    # the panel is the owner's alone: an ephemeral message nobody else in the group sees
    assert panel.params["ephemeral_message_parameters"]["receiver_user_id"] == owner
    assert not any("⚙️" in (m.get("text") or "") for m in tg.visible(group))
    panel_id = int(panel.params["_ephemeral_message_id"])
    tg.send_text(owner, f"/txt2img@prompt2pic_bot a {SECRET} snail", chat_id=group)
    await asyncio.wait_for(gen.holding.wait(), 10)
    [status] = await tg.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == group and "snail" in c.text)
    status_id = int(status.params["_message_id"])
    await tg.wait_for(lambda c: c.method == "editMessageText" and c.chat_id == group and "%" in c.text)
    cancel = callbacks(status)[0]
    await asyncio.sleep(0.3)

    # a user in another chat: nothing, whatever the button
    before, jobs_before = len(tg.calls), await all_jobs(service)
    here = await a_message(Chat(tg, outsider))
    for d in [*data, cancel]:
        [answer] = await answered(tg, tg.press(outsider, here, d))
        assert NOT_YOURS["en"] in answer.params.get("text", "").lower(), d
    await asyncio.sleep(0.3)
    assert leaked(tg, {outsider}, before) == []
    assert [c for c in tg.calls[before:] if c.chat_id == group] == []  # nothing sent to the group either
    assert await all_jobs(service) == jobs_before

    # a member of the group: not the owner's cancel, nor the owner's settings panel ...
    mark = len(tg.calls)
    [answer] = await answered(tg, tg.press(member, status_id, cancel))
    assert NOT_YOURS["en"] in answer.params["text"].lower()
    [answer] = await answered(tg, tg.press(member, photo_id, "s:q:fast"))  # (the panel: they cannot see it)
    assert "someone else's settings" in answer.params["text"]
    await asyncio.sleep(0.3)
    assert [c for c in tg.calls[mark:] if c.method != "answerCallbackQuery"] == []
    assert await all_jobs(service) == jobs_before
    assert (await service.parts.telegram.store.get_prefs(member)).quality.value == "auto"

    # ... but the picture's buttons, which the group shares: the original, in the group
    qid = tg.press(member, photo_id, png)
    [document] = await tg.wait_for(lambda c: c.method == "sendDocument" and c.chat_id == group and c.ok)
    assert document.files["document"] == _stored(service, png.split(":")[-1])
    assert "Sending the original" in (await answered(tg, qid))[0].params["text"]

    # the owner: their settings panel, and their cancel
    mark = len(tg.calls)
    tg.press_ephemeral(owner, group, panel_id, "s:q:fast")
    await tg.wait_for(lambda c: tg.calls.index(c) >= mark and c.method == "editEphemeralMessageText" and c.ok)
    assert (await service.parts.telegram.store.get_prefs(owner)).quality.value == "fast"
    [shown] = tg.ephemerals_to(group, owner)
    assert shown["text"] != panel.params["text"]  # the panel itself says the new setting
    tg.press(owner, status_id, cancel)
    await tg.wait_for(
        lambda c: c.method == "editMessageText" and c.chat_id == group and "Cancelled" in c.text, timeout=10
    )


async def test_the_report_button_only_when_someone_receives_reports(start_service, telegram):
    await start_service()
    me = Chat(telegram, 611)
    me.send("a quiet lake")
    [photo] = await me.photo()
    assert [d.split(":")[1] for d in callbacks(photo)] == ["new", "var", "png"]  # no report
    # an old Report button (from when there were admins) says honestly that nobody reads reports
    job = callbacks(photo)[0].split(":")[-1]
    [answer] = await answered(telegram, me.press(int(photo.params["_message_id"]), f"r:rep:{job}"))
    assert "no moderators" in answer.params["text"]


async def test_the_report_button_with_an_admin_chat(start_service, telegram):
    await start_service(admin_chat_id=-100555)
    me = Chat(telegram, 612)
    me.send("a quiet lake")
    [photo] = await me.photo()
    assert [d.split(":")[1] for d in callbacks(photo)] == ["new", "var", "png", "rep"]


async def test_every_press_is_answered_once_and_a_forgotten_picture_says_so(start_service, telegram):
    await start_service()
    me = Chat(telegram, 621, "ru")
    here = await a_message(me)
    for data in ("zzz", "r:frob:" + "0" * 32, "x:1:2:3", "r:new"):  # data no handler can read
        [answer] = await answered(telegram, me.press(here, data))
        assert "больше не работает" in answer.params["text"], data
    for data in ("r:new:" + "0" * 32, "r:var:" + "1" * 32, "r:png:" + "2" * 32, "c:" + "3" * 32):
        answers = await answered(telegram, me.press(here, data))  # a picture the bot does not know
        assert [a.params["text"] for a in answers] == ["Этой картинки у меня больше нет. Пришлите описание ещё раз."]
    await asyncio.sleep(0.3)
    assert [c for c in me.since_mark() if c.method != "answerCallbackQuery"] == []  # said once, nothing sent
    assert (await me.ask("/queue")).startswith("У вас нет")  # and no job was queued
