"""The rest of the front through the real stack: webhook mode with its secret token, the
allowlist, users who block the bot, pictures too large for a photo."""

from __future__ import annotations

import asyncio
import io
import os

import aiohttp
from PIL import Image

from adapters.embedded.generator import FakeGenerator
from adapters.sqlite.user_store import SqliteUserStore
from domain.models import GeneratedImage
from tests.telegram.conftest import free_port
from tests.telegram.helpers import Chat, HeldGenerator, png_size

SECRET = "s3cret-Token_for-tests_0123456789abcdef"  # 32-256 of A-Z a-z 0-9 _ -


async def test_webhook_mode_checks_the_secret_token(start_service, telegram, caplog):
    port = free_port()
    service = await start_service(
        # As read from Kubernetes Secrets made from files written by echo or openssl: a trailing
        # newline, which must reach neither Telegram (setWebhook, the URL) nor the comparison.
        telegram_bot_token=telegram.token + "\n",
        telegram_mode="webhook",
        telegram_webhook_url="https://bot.example.com/tg/hook",
        telegram_webhook_path="/tg/hook",
        telegram_webhook_secret=SECRET + "\n",
        http_port=port,
    )
    [hook] = telegram.calls_of("setWebhook")
    assert hook.params["url"] == "https://bot.example.com/tg/hook"
    assert hook.params["secret_token"] == SECRET
    # (pre_checkout_query even with PAYMENTS=off: an invoice of an earlier run is refused, not left to time out)
    assert set(hook.params["allowed_updates"]) == {
        "message",
        "callback_query",
        "inline_query",
        "guest_message",
        "pre_checkout_query",
    }
    assert telegram.calls_of("deleteWebhook") == []
    url = f"http://127.0.0.1:{port}/tg/hook"
    async with aiohttp.ClientSession() as http:
        forged = (
            {},
            {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            {"X-Telegram-Bot-Api-Secret-Token": ""},
            {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]},
            {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"},
            {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1] + "é"},  # not ASCII: compare_digest on str raises
            {"X-Telegram-Bot-Api-Secret-Token": "секрет" * 8},
        )
        for headers in forged:
            update = telegram.text_update(31, "a forged prompt")
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 401, headers
        assert "update not handled" not in caplog.text  # a 401, not a 503 with a warning
        update = telegram.text_update(32, "a lighthouse at night")
        async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
            assert response.status == 200
        [photo] = await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 32, timeout=15)
        assert "a lighthouse at night" in photo.text
        assert telegram.calls_of("sendMessage", 32)[0].text.startswith("⏳ Queued")
        await asyncio.sleep(0.3)
        assert telegram.calls_of("sendMessage", 31) == []  # the forged ones did nothing
        assert {c.token for c in telegram.calls} == {telegram.token}  # the token without its newline
        assert await service.queue.backlog() == 0

        # stopping: updates are turned away (Telegram sends them again, to another instance)
        service.stop.set()
        await asyncio.sleep(0.2)
        update = telegram.text_update(33, "too late")
        async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
            assert response.status == 503


async def test_allowlist(start_service, telegram):
    await start_service(allowed_user_ids="41", admin_ids="43")
    outsider, member, admin = Chat(telegram, 42), Chat(telegram, 41), Chat(telegram, 43, "ru")
    reply = await outsider.ask("a forbidden fruit")
    assert "this bot is private" in reply and "42" in reply
    outsider.press(12345, "r:new:" + "0" * 32)
    await telegram.wait_for(
        lambda c: c.method == "answerCallbackQuery" and c.params.get("show_alert") in (True, "true")
    )
    assert "⏳ Queued" in await member.ask("an allowed apple")
    assert "В очереди" in await admin.ask("яблоко админа")
    await asyncio.sleep(0.3)
    assert [c for c in telegram.calls if c.chat_id == 42 and c.method != "sendMessage"] == []


async def test_blocked_users_get_no_call_after_the_first_403_and_are_forgiven(start_service, telegram):
    gen = HeldGenerator(marker="fox")
    service = await start_service(generator=gen, admin_ids="51", send_rate_per_chat=20)
    telegram.send_text(50, "a red fox")
    await telegram.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 50)
    await asyncio.wait_for(gen.holding.wait(), 10)
    telegram.blocked_chats.add(50)  # blocks the bot while the picture is being drawn
    [first] = await telegram.wait_for(lambda c: c.chat_id == 50 and c.params.get("_failed") == 403, timeout=15)
    gen.release()
    store = SqliteUserStore(service.settings.sqlite_path)
    await store.start()
    try:
        deadline = asyncio.get_running_loop().time() + 15
        while not (await store.history(50, 1)):  # the result is still recorded
            assert asyncio.get_running_loop().time() < deadline, "the result was not recorded"
            await asyncio.sleep(0.05)
        [record] = await store.history(50, 1)
        assert record.image_key and record.prompt == "a red fox"
    finally:
        await store.stop()
    await asyncio.sleep(1.5)  # progress edits, chat actions or the photo would show up now
    later = [c.method for c in telegram.calls[telegram.calls.index(first) + 1 :] if c.chat_id == 50]
    assert later == [], f"calls after the first 403: {later}"
    admin = Chat(telegram, 51)
    assert "blocked the bot: 1" in await admin.ask("/stats")
    telegram.blocked_chats.discard(50)  # unblocks and writes again
    assert "Hi, Ann" in await Chat(telegram, 50).ask("/start")
    assert "blocked the bot: 0" in await admin.ask("/stats")
    assert "⏳ Queued" in await Chat(telegram, 50).ask("a fox, once more")


class HugeGenerator(FakeGenerator):
    """Pictures of noise stored without compression: over Telegram's 10 MB photo limit."""

    async def generate(self, requests, progress=None):  # type: ignore[no-untyped-def]
        out = []
        for _ in requests:
            w, h = 1920, 1920
            image = Image.frombytes("RGB", (w, h), os.urandom(w * h * 3))
            buf = io.BytesIO()
            image.save(buf, format="PNG", compress_level=0)
            out.append(GeneratedImage(png=buf.getvalue(), width=w, height=h))
        return out


async def test_too_large_for_a_photo_goes_as_a_document(start_service, telegram):
    await start_service(generator=HugeGenerator())
    telegram.send_text(60, "the whole sky, every star")
    [sent] = await telegram.wait_for(
        lambda c: c.method in ("sendPhoto", "sendDocument") and c.chat_id == 60, timeout=20
    )
    assert sent.method == "sendDocument"
    data = sent.files["document"]
    assert len(data) > 10 * 1024 * 1024 and png_size(data) == (1920, 1920)
    assert "the whole sky, every star" in sent.text and "1920×1920" in sent.text
    texts = [b["text"] for b in sent.buttons()]
    assert "📄 Original PNG" not in texts and "🔁 New seed" in texts  # it is the original already


async def test_a_photo_telegram_refuses_goes_as_a_document_and_refusals_do_not_loop(start_service, telegram):
    await start_service()
    telegram.fail("sendPhoto", 400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
    telegram.send_text(61, "an odd little picture")
    [doc] = await telegram.wait_for(lambda c: c.method == "sendDocument" and c.chat_id == 61 and c.ok, timeout=15)
    assert "an odd little picture" in doc.text
    assert [c.params.get("_failed") for c in telegram.calls_of("sendPhoto", 61)] == [400]

    telegram.fail("sendPhoto", 400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
    telegram.fail("sendDocument", 400, "Bad Request: wrong file identifier", times=10)
    telegram.send_text(62, "a picture nobody will take")
    [failure] = await telegram.wait_for(
        lambda c: c.method == "sendMessage" and c.chat_id == 62 and c.ok and "Sorry" in c.text, timeout=20
    )
    assert "Telegram would not take the picture" in failure.text and "a picture nobody will take" in failure.text
    await asyncio.sleep(3.0)  # DeliverResults would retry after 2 s if it were told to
    photos, documents = telegram.calls_of("sendPhoto", 62), telegram.calls_of("sendDocument", 62)
    assert len(photos) == 1 and 1 < len(documents) <= 5  # without what was refused, a bounded number of times
    assert "reply_markup" not in documents[-1].params and not documents[-1].params.get("caption")
    [status] = [c for c in telegram.calls_of("sendMessage", 62) if c.text.startswith("⏳")]
    assert int(status.params["_message_id"]) not in telegram.messages  # the status message ended


async def test_a_chat_in_flood_control_holds_up_nobody_else(start_service, telegram):
    """Results are handled each on its own: one chat waiting out a 429 does not keep another
    user's finished picture from being sent, nor counted as in progress against their limit."""
    gen = HeldGenerator(marker="snail")
    await start_service(generator=gen, max_jobs_in_flight_per_user=1, send_rate_per_chat=20)
    telegram.fail("sendPhoto", 429, "Too Many Requests: retry after 5", retry_after=5)
    telegram.send_text(700, "a quick fox")
    [flooded] = await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 700, timeout=15)
    assert flooded.params["_failed"] == 429
    slow = Chat(telegram, 701)
    slow.send("a slow snail")
    await asyncio.wait_for(gen.holding.wait(), 10)
    gen.release()
    released = asyncio.get_running_loop().time()
    [_photo] = await slow.photo(timeout=10)
    assert asyncio.get_running_loop().time() - released < 3.0  # not after the other chat's 5 s
    assert "⏳ Queued" in await slow.ask("a crab")  # the finished one no longer counts
    assert not [c for c in telegram.calls_of("sendPhoto", 700) if c.ok]  # still waiting out its 429
    await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 700 and c.ok, timeout=15)


class DatabaseAway:
    """The user store's admission fails ``times`` times (the database away or too busy)."""

    def __init__(self, monkeypatch, times: int = 1) -> None:
        self.left = times
        original = SqliteUserStore.admit

        async def admit(store, *args, **kwargs):  # type: ignore[no-untyped-def]
            if self.left:
                self.left -= 1
                raise ConnectionRefusedError("the database is away")
            return await original(store, *args, **kwargs)

        monkeypatch.setattr(SqliteUserStore, "admit", admit)


async def test_polling_a_failed_update_gets_an_honest_answer_not_silence(start_service, telegram, monkeypatch):
    """Telegram counts a polled update as delivered: when its handling fails, the user is told
    the message was not taken, in their language, and sending it again works."""
    await start_service()
    away = DatabaseAway(monkeypatch)
    chat = Chat(telegram, 71, "ru")
    reply = await chat.ask("маяк в тумане")
    assert "не принято" in reply and "ещё раз" in reply
    assert away.left == 0
    assert "В очереди" in await chat.ask("маяк в тумане")
    await chat.wait(lambda c: c.method == "sendPhoto", timeout=15)


async def test_webhook_a_failed_update_is_refused_so_telegram_sends_it_again(start_service, telegram, monkeypatch):
    """In webhook mode the update is handled within the request: a failure is answered with an
    error (Telegram then sends the update again) instead of a 200 for an update that was lost."""
    port = free_port()
    await start_service(
        telegram_mode="webhook",
        telegram_webhook_url="https://bot.example.com/tg/hook",
        telegram_webhook_path="/tg/hook",
        telegram_webhook_secret=SECRET,
        http_port=port,
    )
    away = DatabaseAway(monkeypatch)
    update = telegram.text_update(72, "a lighthouse in the fog")
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{port}/tg/hook", json=update, headers=headers) as response:
            assert response.status >= 500
        assert away.left == 0 and telegram.calls_of("sendMessage", 72) == []  # nothing said yet
        async with http.post(f"http://127.0.0.1:{port}/tg/hook", json=update, headers=headers) as response:
            assert response.status == 200  # Telegram's second try
        [photo] = await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 72, timeout=15)
        assert "a lighthouse in the fog" in photo.text
        async with http.post(f"http://127.0.0.1:{port}/tg/hook", json=update, headers=headers) as response:
            assert response.status == 200  # once more (Telegram may repeat): no second job
        await asyncio.sleep(1.0)
        assert len(telegram.calls_of("sendPhoto", 72)) == 1
