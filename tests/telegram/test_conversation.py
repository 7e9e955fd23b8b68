"""A scripted conversation in each language through the real aiogram stack and the fake Bot API
server: every command, every parameter, a button of each kind, each bad input, with the replies
the user must see."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from adapters.sqlite.user_store import SqliteUserStore
from domain.models import Locale, Quality
from domain.users import JobState, SendAs
from tests.telegram.helpers import Chat, HeldGenerator, png_size

ADMIN = 900


def norm(text: str) -> str:
    """Fluent formats numbers per locale (Russian groups digits with no-break spaces)."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


EN = {
    "lang": "en",
    "start": "Hi, Ann!",
    "help": [
        "--ar W:H",
        "--no",
        "--seed N",
        "--q fast, balanced, quality, auto",
        "from 1:6 to 6:1",
        "/settings",
        "/cancel",
    ],
    "bad": [
        ("/txt2img", ["The prompt is empty"]),
        ("x" * 5000, ["too long: 5,000 characters, at most 1,000"]),
        ("a cat --style anime", ["I don't know the parameter --style", "--ar, --no, --seed, --q"]),
        ("a cat --ar 50:1", ["“50:1” is not supported", "from 1:6 to 6:1", "16:9"]),
        ("a cat --seed -3", ["seed must be a whole number from 0 to 4294967295", "not “-3”"]),
        ("a cat --q ultra", ["Unknown quality “ultra”", "fast, balanced, quality, auto"]),
        ("a cat --ar", ["--ar needs a value", "--ar 16:9"]),
        ("🌅🌊🔥", ["no words to draw from"]),
        ("/frobnicate", ["I don't know the command /frobnicate"]),
    ],
    "sticker": "text prompts only",
    "admins_only": "/stats is for the bot's admins",
    "rtl": "חתול שחור על גג בשקיעה",
    "queued": "Queued: position",
    "full": "a lighthouse in a storm",
    "negative": "people, text",
    "caption": ["seed 42", "896×512", "quality: balanced (as you asked)", "without: people, text"],
    "auto_caption": "quality: quality (the service is quiet enough for it)",
    "answer_new": "A new seed",
    "answer_var": "3 variations",
    "answer_png": "original PNG",
    "buttons": [
        "🔁 New seed",
        "🎲 Variations ×3",
        "📄 Original PNG",
        "🔗 Open full size",
        "📋 Copy prompt",
        "⚠️ Report",
        "↗️ Share",
    ],
    "album": "🎲 3 variations of: a lighthouse in a storm",
    "held": "a slow snail on a leaf",
    "marker": "snail",
    "second": "a turtle",
    "third": "a crab",
    "drawing": "Drawing your picture… 8%",
    "queue": [
        "Your pictures in progress: 3",
        "1. a slow snail on a leaf — drawing, 8%",
        "2. a turtle — queued, position 2",
        "3. a crab — queued, position 3",
    ],
    "cancel_choose": "You have 3 pictures in progress. Which one should I cancel?",
    "cancelling": "Cancelling",
    "cancelled_status": "✖ Cancelled.",
    "cancelled_reply": "✖ Cancelled: a turtle",
    "queue_after": ["Your pictures in progress: 1", "1. a slow snail on a leaf"],
    "settings": [
        "⚙️ Your settings",
        "Aspect ratio: default (512×384)",
        "Quality: auto",
        "Language: from Telegram (English)",
        "Send pictures as: 🖼 Photo",
    ],
    "settings_changed": ["Aspect ratio: 9:16", "Quality: fast", "Send pictures as: 📄 File (PNG)"],
    "saved": "✓ Saved",
    "tall": "a tall tower",
    "other_lang": "ru",
    "other_settings": "⚙️ Ваши настройки",
    "other_help": "Как получить картинку",
    "history": ["Your last", "a tall tower", "a lighthouse in a storm"],
    "stats": ["📊 Today (UTC)", "Queue depth: 0", "Jobs:", "done", "Workers seen: 1"],
    "menu": "Draw a picture from a prompt",
}

RU = {
    "lang": "ru",
    "start": "Привет, Ann!",
    "help": [
        "--ar Ш:В",
        "--no",
        "--seed N",
        "--q fast, balanced, quality, auto",
        "от 1:6 до 6:1",
        "/settings",
        "/cancel",
    ],
    "bad": [
        ("/txt2img", ["Описание пустое"]),
        ("x" * 5000, ["слишком длинное: 5 000 символов, можно не больше 1 000"]),
        ("кот --style anime", ["Я не знаю параметр --style", "--ar, --no, --seed, --q"]),
        ("кот --ar 50:1", ["«50:1» не поддерживается", "от 1:6 до 6:1", "16:9"]),
        ("кот --seed -3", ["Seed должен быть целым числом от 0 до 4294967295", "а не «-3»"]),
        ("кот --q ultra", ["Неизвестное качество «ultra»", "fast, balanced, quality, auto"]),
        ("кот --ar", ["У параметра --ar нет значения", "--ar 16:9"]),
        ("🌅🌊🔥", ["нет слов"]),
        ("/frobnicate", ["Я не знаю команду /frobnicate"]),
    ],
    "sticker": "только текстовые описания",
    "admins_only": "/stats — только для админов",
    "rtl": "قطة سوداء على السطح عند الغروب",
    "queued": "В очереди: место",
    "full": "маяк во время шторма",
    "negative": "люди, текст",
    "caption": ["seed 42", "896×512", "качество: сбалансированно (как вы просили)", "без: люди, текст"],
    "auto_caption": "качество: максимум (сервис достаточно свободен)",
    "answer_new": "Новый seed",
    "answer_var": "Варианты (3)",
    "answer_png": "оригинал PNG",
    "buttons": [
        "🔁 Новый seed",
        "🎲 Варианты ×3",
        "📄 Оригинал PNG",
        "🔗 Открыть в полном размере",
        "📋 Копировать запрос",
        "⚠️ Пожаловаться",
        "↗️ Поделиться",
    ],
    "album": "🎲 Варианты (3): маяк во время шторма",
    "held": "медленная улитка на листе",
    "marker": "улитка",
    "second": "черепаха",
    "third": "краб",
    "drawing": "Рисую вашу картинку… 8%",
    "queue": [
        "Ваши картинки в работе: 3",
        "1. медленная улитка на листе — рисую, 8%",
        "2. черепаха — в очереди, место 2",
        "3. краб — в очереди, место 3",
    ],
    "cancel_choose": "У вас в работе картинок: 3. Какую отменить?",
    "cancelling": "Отменяю",
    "cancelled_status": "✖ Отменено.",
    "cancelled_reply": "✖ Отменено: черепаха",
    "queue_after": ["Ваши картинки в работе: 1", "1. медленная улитка на листе"],
    "settings": [
        "⚙️ Ваши настройки",
        "Соотношение сторон: по умолчанию (512×384)",
        "Качество: авто",
        "Язык: как в Telegram (Русский)",
        "Присылать картинки: 🖼 Фото",
    ],
    "settings_changed": ["Соотношение сторон: 9:16", "Качество: быстро", "Присылать картинки: 📄 Файлом (PNG)"],
    "saved": "✓ Сохранено",
    "tall": "высокая башня",
    "other_lang": "en",
    "other_settings": "⚙️ Your settings",
    "other_help": "How to get a picture",
    "history": ["Ваши последние картинки", "высокая башня", "маяк во время шторма"],
    "stats": ["📊 Сегодня (UTC)", "Очередь: 0", "Задачи:", "готово", "Воркеров замечено: 1"],
    "menu": "Нарисовать картинку по описанию",
}


def caption_size(caption: str) -> tuple[int, int]:
    w, h = re.search(r"(\d+)×(\d+)", caption).groups()  # type: ignore[union-attr]
    return int(w), int(h)


def seed_of(caption: str) -> int:
    return int(re.search(r"seed (\d+)", caption).group(1))  # type: ignore[union-attr]


def answered_before(chat: Chat, query_id: str) -> None:
    """The callback query was answered before the bot sent or changed anything in the chat."""
    calls = chat.tg.calls[chat.mark :]
    answer = next(
        i
        for i, c in enumerate(calls)
        if c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id
    )
    # (a deleteMessage there is the clean-up of an earlier job's status, not this press's work)
    work = [c.method for c in calls[:answer] if c.chat_id == chat.user_id and c.method != "deleteMessage"]
    assert work == [], f"work done before the answer: {work}"


@pytest.mark.parametrize("lang", [EN, RU], ids=["en", "ru"])
async def test_conversation(start_service, telegram, tmp_path, lang):
    L = lang
    gen = HeldGenerator(marker=L["marker"], max_batch=8)
    service = await start_service(
        generator=gen,
        admin_ids=str(ADMIN),
        send_rate_per_chat=50.0,
        user_rate_per_minute=100,
        quality_policy="fixed",
        public_base_url="https://p2p.example.com",  # a public name: links are buttons
    )
    store = SqliteUserStore(service.settings.sqlite_path)
    await store.start()
    try:
        await _script(service, telegram, store, gen, L)
    finally:
        gen.release()
        await store.stop()


async def _script(service, tg, store, gen, L) -> None:
    me = Chat(tg, ADMIN, L["lang"])
    stranger = Chat(tg, 901, L["lang"])

    # --- the command menu, per language; admins also get /stats ---------------------------------
    await tg.wait_for(
        lambda c: c.method == "setMyCommands" and "scope" in c.params and c.params["scope"].get("type") == "chat",
        timeout=10,
    )
    menus = tg.calls_of("setMyCommands")
    by_lang = {c.params.get("language_code"): c for c in menus if c.params["scope"]["type"] == "default"}
    assert set(by_lang) >= {None, "en", "ru"}
    assert [cmd["command"] for cmd in by_lang["ru"].params["commands"]][:3] == ["txt2img", "settings", "queue"]
    assert any(L["menu"] == cmd["description"] for cmd in by_lang[L["lang"]].params["commands"])
    assert all("stats" not in [cmd["command"] for cmd in c.params["commands"]] for c in by_lang.values())
    admin_menus = [c for c in menus if c.params["scope"]["type"] == "chat"]
    assert admin_menus and all(int(c.params["scope"]["chat_id"]) == ADMIN for c in admin_menus)
    assert all("stats" in [cmd["command"] for cmd in c.params["commands"]] for c in admin_menus)

    # --- /start, /help ------------------------------------------------------------------------------
    assert L["start"] in await me.ask("/start")
    help_text = await me.ask("/help")
    for part in L["help"]:
        assert part in help_text

    # --- bad input: a clear reply, nothing queued ---------------------------------------------------
    for text, expected in L["bad"]:
        reply = norm(await me.ask(text))
        for part in expected:
            assert part in reply, (text[:40], reply)
        assert await service.queue.backlog() == 0
        assert await store.active_jobs() == []
        assert not [c for c in me.since_mark() if c.method == "sendMessage" and L["queued"] in c.text]
    me.mark = len(tg.calls)
    tg.send_sticker(ADMIN, language_code=L["lang"])
    assert L["sticker"] in (await me.reply()).text
    assert L["admins_only"] in await stranger.ask("/stats")
    assert (await store.stats(0)).submitted == 0

    # --- right-to-left text is a valid prompt --------------------------------------------------------
    me.send(L["rtl"])
    status = await me.reply()
    assert status.text.startswith("⏳") and L["queued"] in status.text and L["rtl"] in status.text
    [photo] = await me.photo()
    assert photo.method == "sendPhoto" and L["rtl"] in photo.text and L["auto_caption"] in photo.text

    # --- /txt2img with every parameter at once ------------------------------------------------------------------
    me.send(f"/txt2img {L['full']} --ar 16:9 --no {L['negative']} --seed 42 --q balanced")
    status = await me.reply()
    assert L["queued"] in status.text
    assert status.buttons()[0]["callback_data"].startswith("c:")  # a cancel button while it waits
    [photo] = await me.photo()
    for part in L["caption"]:
        assert part in photo.text, photo.text
    assert png_size(photo.files["photo"]) == (896, 512)  # 7:4, the nearest to 16:9 in steps of 128
    # the chat action showed the upload, before the photo
    actions = [c for c in me.since_mark() if c.method == "sendChatAction"]
    assert actions and actions[0].params["action"] == "upload_photo"
    assert tg.calls.index(actions[0]) < tg.calls.index(photo)
    # the status message was cleaned up once the picture arrived
    await me.wait(lambda c: c.method == "deleteMessage" and int(c.params["message_id"]) == status_id(tg, status))
    full_photo_id = message_id_of(tg, photo)
    buttons = {b["text"]: b for b in photo.buttons()}
    assert list(buttons) == L["buttons"]
    job_id = buttons[L["buttons"][2]]["callback_data"].split(":")[-1]
    record = await store.get_job(job_id)
    assert (record.seed, record.width, record.height, record.quality) == (42, 896, 512, Quality.BALANCED)
    assert record.negative_prompt == L["negative"] and record.state == JobState.DONE
    # Copy prompt: the prompt and its parameters as the bot reads them back (the seed included)
    copied = buttons[L["buttons"][4]]["copy_text"]["text"]
    assert copied == f"{L['full']} --no {L['negative']} --ar 7:4 --seed 42 --q balanced"

    # URL button: the storage link (signed, served by this app's HTTP endpoint)
    url = buttons[L["buttons"][3]]["url"]
    assert url.startswith("https://p2p.example.com/files/images/") and job_id in url and "sig=" in url
    # Share: inline mode with the prompt
    assert buttons[L["buttons"][-1]]["switch_inline_query"] == L["full"]

    # Original PNG: the stored file, byte for byte, as a document
    qid = me.press(full_photo_id, buttons[L["buttons"][2]]["callback_data"])
    [document] = await me.wait(lambda c: c.method == "sendDocument")
    answered_before(me, qid)
    assert L["answer_png"] in answer_text(tg, qid)
    stored = (Path(service.settings.local_storage_dir) / "images" / f"{job_id}.png").read_bytes()
    assert document.files["document"] == stored == photo.files["photo"]

    # New seed: same prompt and size, another seed
    qid = me.press(full_photo_id, buttons[L["buttons"][0]]["callback_data"])
    [photo2] = await me.photo()
    answered_before(me, qid)
    assert L["answer_new"] in answer_text(tg, qid)
    assert L["full"] in photo2.text and seed_of(photo2.text) != 42
    assert png_size(photo2.files["photo"]) == (896, 512)

    # Variations: three pictures, three seeds, as one album with the buttons below it
    qid = me.press(full_photo_id, buttons[L["buttons"][1]]["callback_data"])
    statuses = await me.wait(lambda c: c.method == "sendMessage" and L["queued"] in c.text, count=3)
    answered_before(me, qid)
    assert L["answer_var"] in answer_text(tg, qid)
    assert [s.text.split(",")[0][-1] for s in statuses] == ["1", "2", "3"]  # positions 1, 2, 3
    [album] = await me.wait(lambda c: c.method == "sendMediaGroup")
    media = album.params["media"]
    assert len(media) == 3 and [m["type"] for m in media] == ["photo"] * 3
    seeds = {seed_of(m["caption"]) for m in media}
    assert len(seeds) == 3 and 42 not in seeds
    assert all(L["full"] in m["caption"] for m in media)
    assert all(png_size(album.files[f"media{i}"]) == (896, 512) for i in range(3))
    [follow] = await me.wait(lambda c: c.method == "sendMessage" and c.text.startswith(L["album"]))
    assert [b["text"] for b in follow.buttons()][:3] == ["🔁 1", "📄 1", "🔗 1"]
    assert not [c for c in me.since_mark() if c.method in ("sendPhoto", "sendDocument")]  # one delivery
    for status in statuses:  # their status messages went once the album was in the chat
        await me.wait(
            lambda c, s=status: c.method == "deleteMessage" and int(c.params["message_id"]) == status_id(tg, s)
        )

    # --- live status, /queue and /cancel while a picture is being drawn --------------------------------
    me.send(L["held"])
    held_status = await me.reply()
    await asyncio.wait_for(gen.holding.wait(), 10)
    [edit] = await me.wait(lambda c: c.method == "editMessageText" and "%" in c.text)
    assert L["drawing"] in edit.text and "▓" in edit.text
    assert int(edit.params["message_id"]) == status_id(tg, held_status)
    me.send(L["second"])
    second_status = await me.reply()
    # a place counts the pictures being drawn (what a user reads it as): the snail is first
    assert f"{L['queued']} 2," in second_status.text
    me.send(L["third"])
    third_status = await me.reply()
    assert f"{L['queued']} 3," in third_status.text
    queue_text = await me.ask("/queue")
    for part in L["queue"]:
        assert part in queue_text, queue_text
    assert await me.ask("/status") == queue_text  # the same, under its other name

    # /cancel with several jobs: a choice
    me.send("/cancel")
    choice = await me.reply()
    assert L["cancel_choose"] in choice.text
    choices = choice.buttons()
    assert len(choices) == 4 and L["second"] in choices[1]["text"]
    qid = me.press(message_id_of(tg, choice), choices[1]["callback_data"])
    [cancelled] = await me.wait(lambda c: c.method == "editMessageText" and L["cancelled_status"] in c.text)
    answered_before(me, qid)
    assert L["cancelling"] in answer_text(tg, qid)
    assert int(cancelled.params["message_id"]) == status_id(tg, second_status)
    assert L["cancelled_reply"] in (await me.reply()).text
    # the cancel button on a status message
    qid = me.press(status_id(tg, third_status), third_status.buttons()[0]["callback_data"])
    [cancelled] = await me.wait(lambda c: c.method == "editMessageText" and L["cancelled_status"] in c.text)
    assert int(cancelled.params["message_id"]) == status_id(tg, third_status)
    queue_text = await me.ask("/queue")
    for part in L["queue_after"]:
        assert part in queue_text
    assert L["second"] not in queue_text

    # the held picture arrives; the cancelled ones never do
    gen.release()
    [photo] = await me.photo()
    assert L["held"] in photo.text
    deadline = time.monotonic() + 10
    while not all([(await store.get_job(j)).finished_at for j in await job_ids(store, L)]):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    for prompt in (L["second"], L["third"]):
        assert not [c for c in tg.calls if c.method in ("sendPhoto", "sendDocument") and c.text.startswith(prompt)]
    assert await me.ask("/cancel") and (await store.active_jobs(ADMIN)) == []

    # --- /settings: durable, and they change what the next picture is ----------------------------------
    me.send("/settings")
    panel = await me.reply()
    for part in L["settings"]:
        assert part in panel.text, panel.text
    panel_id = message_id_of(tg, panel)
    for data, expected in (("s:ar:9x16", "✓ 9:16"), ("s:q:fast", None), ("s:as:document", None)):
        qid = me.press(panel_id, data)
        [edit] = await me.wait(lambda c: c.method == "editMessageText")
        answered_before(me, qid)
        assert answer_text(tg, qid) == L["saved"]
        if expected:
            assert any(b["text"] == expected for b in edit.buttons())
    for part in L["settings_changed"]:
        assert part in edit.text
    prefs = await store.get_prefs(ADMIN)  # read back from the SQLite file by another connection
    assert (prefs.aspect, prefs.quality, prefs.send_as) == ("9:16", Quality.FAST, SendAs.DOCUMENT)

    me.send(L["tall"])
    [document] = await me.photo()
    assert document.method == "sendDocument"
    width, height = caption_size(document.text)
    assert png_size(document.files["document"]) == (width, height) == (512, 896)  # 9:16 (4:7), even at fast
    actions = [c for c in me.since_mark() if c.method == "sendChatAction"]
    assert actions[0].params["action"] == "upload_document"
    assert [b["text"] for b in document.buttons()] == [
        b for i, b in enumerate(L["buttons"]) if i != 2
    ]  # no PNG button under a file

    # the language: the panel, the menu and later replies follow it; "auto" goes back
    qid = me.press(panel_id, f"s:lang:{L['other_lang']}")
    [edit] = await me.wait(lambda c: c.method == "editMessageText")
    assert L["other_settings"] in edit.text
    mark = me.mark
    await tg.wait_for(
        lambda c: (
            tg.calls.index(c) >= mark
            and c.method == "setMyCommands"
            and c.params.get("language_code") == "ru"
            and c.params["scope"]["type"] == "chat"
        )
    )
    chat_menu = [c for c in tg.calls[mark:] if c.method == "setMyCommands"]
    assert {c.params.get("language_code") for c in chat_menu} == {None, "en", "ru"}
    assert all(
        (L["other_lang"] == "ru" and c.params["commands"][0]["description"] == RU["menu"])
        or (L["other_lang"] == "en" and c.params["commands"][0]["description"] == EN["menu"])
        for c in chat_menu
    )
    assert (await store.get_prefs(ADMIN)).locale == Locale(L["other_lang"])
    assert L["other_help"] in await me.ask("/help")
    for data in ("s:lang:auto", "s:as:photo", "s:ar:auto", "s:q:auto"):
        me.press(panel_id, data)
        await me.wait(lambda c: c.method == "editMessageText")
    assert (await store.get_prefs(ADMIN)).locale is None
    assert L["help"][0] in await me.ask("/help")

    # --- /history and /stats --------------------------------------------------------------------------
    me.send("/history")
    history = await me.reply()
    for part in L["history"]:
        assert part in history.text
    links = history.buttons()
    assert links and all(b["url"].startswith("https://p2p.example.com/files/") for b in links)
    stats = norm(await me.ask("/stats"))
    for part in L["stats"]:
        assert part in stats, stats
    assert "worker" in stats or "-" in stats


def status_id(tg, call) -> int:
    return message_id_of(tg, call)


def message_id_of(tg, call) -> int:
    """The message id the fake server gave the message ``call`` sent (or edited)."""
    return int(call.params["_message_id"])


def answer_text(tg, query_id: str) -> str:
    return next(
        c.params.get("text", "")
        for c in tg.calls
        if c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id
    )


async def job_ids(store, L) -> list[str]:
    stats_jobs = []
    for prompt in (L["second"], L["third"]):
        rows = await store.db.read("SELECT job_id FROM jobs WHERE prompt = ?", (prompt,))
        stats_jobs += [r[0] for r in rows]
    return stats_jobs
