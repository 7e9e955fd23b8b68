"""Content safety through the real aiogram stack, the real composition root and ``app.serve``,
against the fake Bot API server: the prompt filter at the bot and on the worker, the real NudeNet
check with each ``SAFETY_IMAGE_ACTION``, the report button, /ban and /unban, and /stats."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from domain.models import Job, Locale
from domain.users import JobRecord, UserLimits
from tests.safety.helpers import MARKER, SampleGenerator
from tests.telegram.helpers import Chat

ADMIN = 900
SQUARE = dict(default_width=512, default_height=512)  # the flagged sample is square


async def start(start_service, action: str = "spoiler", **extra):
    return await start_service(
        generator=SampleGenerator(),
        safety_image_detector="nudenet",
        safety_image_action=action,
        admin_ids={ADMIN},
        **SQUARE,
        **extra,
    )


async def answered(telegram, query_id: str):
    [answer] = await telegram.wait_for(
        lambda c: c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id
    )
    return answer


def stored_pictures(service) -> list[str]:
    root = service.settings.local_storage_dir
    return sorted(p.name for p in root.rglob("*.png")) if root.exists() else []


# --------------------------------------------------------------------------- image actions


async def test_spoiler_blurs_the_flagged_picture_and_not_the_clean_one(telegram, start_service):
    await start(start_service, "spoiler")
    me = Chat(telegram, 301)
    me.send(f"a {MARKER} bloom")
    [flagged] = await me.photo(timeout=30)
    assert flagged.method == "sendPhoto"
    assert flagged.params.get("has_spoiler") == "true"  # a Boolean, as Telegram wants it
    assert telegram.messages[flagged.params["_message_id"]]["has_media_spoiler"] is True
    assert flagged.text.startswith("⚠️ Marked as sensitive")
    assert f"a {MARKER} bloom" in flagged.text  # the user's own prompt in the caption, as usual
    me.send("a quiet lake at dawn")
    [clean] = await me.photo(timeout=30)
    assert clean.method == "sendPhoto" and "has_spoiler" not in clean.params
    assert "has_media_spoiler" not in telegram.messages[clean.params["_message_id"]]
    assert "sensitive" not in clean.text


async def test_a_flagged_picture_asked_for_in_guest_mode_stays_blurred_in_that_chat(telegram, start_service):
    await start(start_service, "spoiler")
    query = telegram.guest_query(305, f"@prompt2pic_bot a {MARKER} bloom", chat_id=-306)
    [answer] = await telegram.wait_for(lambda c: c.method == "answerGuestQuery" and c.ok)
    assert answer.params["guest_query_id"] == query
    inline = telegram.inline_messages[answer.params["_inline_message_id"]]
    for _ in range(600):
        if "photo" in inline:
            break
        await asyncio.sleep(0.05)
    assert inline["has_media_spoiler"] is True and inline["caption"].startswith("⚠️ Marked as sensitive")
    [copy] = [c for c in telegram.calls_of("sendPhoto", 305) if c.ok]  # the caller's copy: blurred too
    assert copy.params.get("has_spoiler") == "true"


async def test_a_flagged_picture_goes_as_a_spoiler_photo_even_to_a_user_who_wants_files(telegram, start_service):
    await start(start_service, "spoiler")
    me = Chat(telegram, 302)
    qid = me.press(1, "s:as:document")  # /settings: send pictures as files
    await answered(telegram, qid)
    me.send("a quiet pond")
    [clean] = await me.photo(timeout=30)
    assert clean.method == "sendDocument"  # the setting works
    me.send(f"{MARKER} petals")
    [flagged] = await me.photo(timeout=30)
    assert flagged.method == "sendPhoto" and flagged.params.get("has_spoiler") == "true"


async def test_refuse_tells_the_user_and_keeps_no_picture(telegram, start_service):
    service = await start(start_service, "refuse")
    me = Chat(telegram, 303, lang="ru")
    me.send(f"{MARKER} цветок")
    refusal = await me.wait(lambda c: c.method == "sendMessage" and "проверку" in c.text, timeout=30)
    assert "не прошла проверку содержимого" in refusal[0].text
    assert MARKER not in refusal[0].text and "цветок" not in refusal[0].text
    assert refusal[0].buttons() == []  # no "try again" for the same prompt
    assert telegram.calls_of("sendPhoto", 303) == [] and telegram.calls_of("sendDocument", 303) == []
    assert stored_pictures(service) == []  # not stored
    me.send("тихое озеро")
    [clean] = await me.photo(timeout=30)
    assert clean.method == "sendPhoto" and "has_spoiler" not in clean.params
    assert len(stored_pictures(service)) == 1


async def test_off_sends_even_a_flagged_picture_as_it_is(telegram, start_service):
    await start(start_service, "off")
    me = Chat(telegram, 304)
    me.send(f"a {MARKER} bloom")
    [photo] = await me.photo(timeout=30)
    assert photo.method == "sendPhoto" and "has_spoiler" not in photo.params


async def test_the_fake_refuses_a_has_spoiler_that_is_not_a_boolean(telegram):
    from tests.safety.helpers import flagged_png

    form = aiohttp.FormData()
    form.add_field("chat_id", "5")
    form.add_field("has_spoiler", "yes")
    form.add_field("photo", flagged_png(64, 64), filename="p.png")
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{telegram.base_url}/bot{telegram.token}/sendPhoto", data=form) as response,
    ):
        body = await response.json()
    assert response.status == 400 and body["description"] == 'Bad Request: field "has_spoiler" must be of type Boolean'


# --------------------------------------------------------------------------- the prompt filter


@pytest.mark.parametrize(
    ("lang", "prompt", "expected"),
    [
        ("ru", "голую девушку на пляже", "Такой запрос здесь не разрешён"),
        ("ru", "эротическую фотосессию", "Такой запрос здесь не разрешён"),
        ("en", "a naked knight", "This request is not allowed here"),
        ("en", "s.e.x on the beach", "This request is not allowed here"),
    ],
)
async def test_a_refused_prompt_is_answered_in_the_users_language_and_never_queued(
    telegram, start_service, lang, prompt, expected
):
    service = await start(start_service)
    me = Chat(telegram, 310, lang=lang)
    reply = await me.ask(prompt)
    assert expected in reply
    for word in prompt.replace(".", " ").split():
        if len(word) > 3:
            assert word.lower() not in reply.lower(), word  # the matched word is never repeated
    assert await service.queue.backlog() == 0
    await asyncio.sleep(0.3)
    assert telegram.calls_of("sendPhoto", 310) == []
    assert "Queued" not in " ".join(telegram.texts_to(310)) and "В очереди" not in " ".join(telegram.texts_to(310))


async def test_the_worker_refuses_a_job_that_did_not_come_through_the_bot(telegram, start_service):
    """A job put on the queue by something else (another front sharing the bot's database, a
    script) meets the filter on the worker: an honest failed result, delivered to the chat
    without the prompt. (The job is recorded, as such a front records it: the bot delivers
    nothing for a job it has no record of, tests/kafka/test_forged_events.py.)"""
    service = await start(start_service)
    job = Job(user_id=311, chat_id=311, prompt="porno in the park", width=512, height=512, seed=1, locale=Locale.EN)
    await service.parts.telegram.store.admit([JobRecord.from_job(job)], UserLimits(), job.created_at)
    await service.queue.publish_job(job)
    me = Chat(telegram, 311)
    [refusal] = await me.wait(lambda c: c.method == "sendMessage" and "not allowed" in c.text, timeout=20)
    assert "porno" not in refusal.text and "park" not in refusal.text
    assert telegram.calls_of("sendPhoto", 311) == []
    assert stored_pictures(service) == []


# --------------------------------------------------------------------------- reports and bans


async def test_report_sends_the_picture_to_every_admin_once(telegram, start_service):
    await start(start_service)
    me = Chat(telegram, 320)
    me.send("a lonely lighthouse")
    [photo] = await me.photo(timeout=30)
    report = photo.button("⚠️ Report")
    assert len(report["callback_data"].encode()) <= 64
    answer = await answered(telegram, me.press(photo.params["_message_id"], report["callback_data"]))
    assert "sent to the moderators" in answer.params["text"]
    [to_admin] = await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == ADMIN)
    assert to_admin.params.get("has_spoiler") == "true"
    assert "id 320" in to_admin.text and "/ban 320" in to_admin.text and "a lonely lighthouse" in to_admin.text
    assert to_admin.files["photo"] == photo.files["photo"]
    again = await answered(telegram, me.press(photo.params["_message_id"], report["callback_data"]))
    assert "already" in again.params["text"]
    await asyncio.sleep(0.3)
    assert len(telegram.calls_of("sendPhoto", ADMIN)) == 1


async def test_reports_go_to_the_admin_chat_when_one_is_set(telegram, start_service):
    await start(start_service, admin_chat_id=-100777)
    me = Chat(telegram, 321, lang="ru")
    me.send("маяк на скале")
    [photo] = await me.photo(timeout=30)
    answer = await answered(
        telegram, me.press(photo.params["_message_id"], photo.button("⚠️ Пожаловаться")["callback_data"])
    )
    assert "отправлена модераторам" in answer.params["text"]
    [to_chat] = await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == -100777)
    assert "маяк на скале" in to_chat.text
    assert telegram.calls_of("sendPhoto", ADMIN) == []


async def test_ban_and_unban_by_an_admin_and_the_banned_user_told_once(telegram, start_service):
    await start(start_service)
    admin, user, other = Chat(telegram, ADMIN), Chat(telegram, 330), Chat(telegram, 331)
    assert "is for the bot's admins" in await other.ask("/ban 330")
    assert "Usage: /ban" in await admin.ask("/ban someone")
    assert "is an admin" in await admin.ask(f"/ban {ADMIN}")
    assert "User 330 is blocked" in await admin.ask("/ban 330")
    assert "blocked already" in await admin.ask("/ban 330")

    assert "You are blocked from using this bot" in await user.ask("a red fox")
    user.send("a blue whale")  # told once: now ignored
    pressed = await answered(telegram, user.press(1, "r:new:" + "0" * 32))
    assert not pressed.params.get("text")  # the button stops spinning, nothing said
    await asyncio.sleep(0.5)
    assert user.since_mark() == []
    assert [c for c in telegram.calls if c.chat_id == 330 and c.method == "sendMessage"][1:] == []

    stats = await admin.ask("/stats")
    assert "Users blocked by admins: 1" in stats

    assert "User 330 is unblocked" in await admin.ask("/unban 330")
    assert "was not blocked" in await admin.ask("/unban 330")
    user.send("a green frog")
    [photo] = await user.photo(timeout=30)
    assert "a green frog" in photo.text


async def test_stats_counts_refusals_and_spoilers(telegram, start_service):
    await start(start_service)
    me, admin = Chat(telegram, 340), Chat(telegram, ADMIN, lang="ru")
    await me.ask("a naked knight")
    me.send(f"a {MARKER} bloom")
    await me.photo(timeout=30)
    stats = await admin.ask("/stats")
    assert "отклонено запросов здесь: 1" in stats
    assert "отправлено под спойлером: 1" in stats
