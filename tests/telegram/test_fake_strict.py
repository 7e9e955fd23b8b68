"""The fake Bot API refuses what Telegram refuses, with Telegram's texts, through aiogram's own
client: a test double laxer than Telegram would let the bot's bugs through."""

from __future__ import annotations

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    CopyTextButton,
    EphemeralMessageParameters,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InlineQueryResultCachedPhoto,
    InlineQueryResultsButton,
    InputMediaPhoto,
    InputTextMessageContent,
    ReplyParameters,
)

from adapters.telegram.bot import build_bot
from tests.fakes.telegram.rules import button_url_refused
from tests.telegram.helpers import tiny_png


@pytest.fixture
async def bot(telegram):
    bot = build_bot(telegram.token, telegram.base_url)
    yield bot
    await bot.session.close()


def url_button(url: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="ok", callback_data="x"),
                InlineKeyboardButton(text="link", url=url),
            ]
        ]
    )


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://img.example.com/a.png?sig=1", False),
        ("http://bot.example.org:8080/files/a.png", False),
        ("tg://resolve?domain=prompt2pic_bot", False),
        ("http://localhost:9000/bucket/a.png", True),
        ("http://127.0.0.1:8080/files/a.png", True),
        ("http://10.0.0.7/a.png", True),
        ("http://[::1]:8080/a.png", True),
        ("http://minio:9000/bucket/a.png", True),
        ("file:///data/images/a.png", True),
        ("ftp://example.com/a.png", True),
        ("http://app.localhost/a.png", True),
    ],
)
def test_which_button_urls_telegram_refuses(url, refused):
    assert button_url_refused(url) is refused


async def test_one_bad_button_refuses_the_whole_call(bot, telegram):
    photo = BufferedInputFile(tiny_png(), "a.png")
    for send in (
        lambda m: bot.send_message(5, "hello", reply_markup=m),
        lambda m: bot.send_photo(5, photo, caption="c", reply_markup=m),
        lambda m: bot.send_document(5, photo, caption="c", reply_markup=m),
    ):
        with pytest.raises(TelegramBadRequest, match="Bad Request: BUTTON_URL_INVALID"):
            await send(url_button("http://127.0.0.1:9000/a.png"))
    assert telegram.visible(5) == []  # nothing was sent
    sent = await bot.send_message(5, "hello", reply_markup=url_button("https://img.example.com/a.png"))
    with pytest.raises(TelegramBadRequest, match="BUTTON_URL_INVALID"):
        await bot.edit_message_text(
            "changed", chat_id=5, message_id=sent.message_id, reply_markup=url_button("http://localhost/a.png")
        )
    assert telegram.visible(5)[0]["text"] == "hello"


async def test_lengths_and_callback_data(bot):
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(
            5,
            "hi",
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(text="б", callback_data="ж" * 33)]]
            ),
        )  # 66 bytes
    await bot.send_message(
        5,
        "hi",
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="б", callback_data="ж" * 32)]]),
    )  # 64 bytes
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(5, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(5, "   ")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(5, BufferedInputFile(tiny_png(), "a.png"), caption="x" * 1025)
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(5, "a <cat> & a dog", parse_mode="HTML")
    await bot.send_message(5, "a &lt;cat&gt; &amp; <b>a dog</b>", parse_mode="HTML")


async def test_edits_like_telegram(bot):
    sent = await bot.send_message(5, "hello")
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("hello", chat_id=5, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("hello", chat_id=5, message_id=999_999)
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(5, "re", reply_parameters=ReplyParameters(message_id=999_999))
    await bot.send_message(
        5, "re", reply_parameters=ReplyParameters(message_id=999_999, allow_sending_without_reply=True)
    )


async def test_albums_take_two_to_ten(bot, telegram):
    def media(n: int) -> list[InputMediaPhoto]:
        return [InputMediaPhoto(media=BufferedInputFile(tiny_png(), f"{i}.png")) for i in range(n)]

    with pytest.raises(TelegramBadRequest, match="too many messages to send as an album"):
        await bot.send_media_group(5, media(11))
    with pytest.raises(TelegramBadRequest, match="2-10"):
        await bot.send_media_group(5, media(1))
    sent = await bot.send_media_group(5, media(3))
    assert len(sent) == 3 and len({m.media_group_id for m in sent}) == 1
    assert len(telegram.visible(5)) == 3


async def test_inline_answers(bot, telegram):
    photo = await bot.send_photo(5, BufferedInputFile(tiny_png(), "a.png"))
    file_id = photo.photo[-1].file_id
    query = telegram.inline_query(5, "cat")
    good = InlineQueryResultCachedPhoto(id="a", photo_file_id=file_id)
    with pytest.raises(TelegramBadRequest, match="RESULT_ID_DUPLICATE"):
        await bot.answer_inline_query(query, [good, good])
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.answer_inline_query(query, [InlineQueryResultCachedPhoto(id="b", photo_file_id="nope")])
    with pytest.raises(TelegramBadRequest, match="START_PARAM_INVALID"):
        await bot.answer_inline_query(query, [good], button=InlineQueryResultsButton(text="go", start_parameter="a b"))
    article = InlineQueryResultArticle(
        id="c", title="t", input_message_content=InputTextMessageContent(message_text="x")
    )
    await bot.answer_inline_query(
        query, [good, article], button=InlineQueryResultsButton(text="go", start_parameter="g_1")
    )
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_inline_query(query, [good])  # one answer per query


async def test_a_deleted_message_is_gone_for_deletes_and_edits(bot, telegram):
    sent = await bot.send_message(5, "⏳ Queued")
    assert await bot.delete_message(5, sent.message_id) is True
    with pytest.raises(TelegramBadRequest, match=r"^Telegram server says - Bad Request: message to delete not found$"):
        await bot.delete_message(5, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="Bad Request: message to edit not found"):
        await bot.edit_message_text("✖ Cancelled.", chat_id=5, message_id=sent.message_id)
    other = await bot.send_message(6, "hello")
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(5, other.message_id)  # not a message of that chat
    refused = [(c.method, c.error) for c in telegram.calls if not c.ok]
    assert refused == [
        ("deleteMessage", "Bad Request: message to delete not found"),
        ("editMessageText", "Bad Request: message to edit not found"),
        ("deleteMessage", "Bad Request: message to delete not found"),
    ]
    assert [m["text"] for m in telegram.visible(6)] == ["hello"] and telegram.visible(5) == []


async def test_copy_text_buttons_take_1_to_256_characters(bot, telegram):
    def copy(text: str) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="copy", copy_text=CopyTextButton(text=text))]]
        )

    with pytest.raises(TelegramBadRequest, match="Bad Request: BUTTON_COPY_TEXT_INVALID"):
        await bot.send_message(5, "hello", reply_markup=copy("я" * 257))
    sent = await bot.send_message(5, "hello", reply_markup=copy("я" * 256))  # characters, not bytes
    assert telegram.visible(5)[0]["reply_markup"]["inline_keyboard"][0][0]["copy_text"]["text"] == "я" * 256
    with pytest.raises(TelegramBadRequest, match="BUTTON_COPY_TEXT_INVALID"):
        await bot.edit_message_reply_markup(chat_id=5, message_id=sent.message_id, reply_markup=copy(""))


async def test_a_guest_query_is_answered_once_in_time_and_its_message_edited_by_id(bot, telegram):
    query = telegram.guest_query(7, "@prompt2pic_bot a cat", chat_id=-900)
    article = InlineQueryResultArticle(
        id="s", title="status", input_message_content=InputTextMessageContent(message_text="⏳ queued")
    )
    sent = await bot.answer_guest_query(query, article)
    assert telegram.inline_messages[sent.inline_message_id]["text"] == "⏳ queued"
    with pytest.raises(TelegramBadRequest, match="Bad Request: query is too old"):
        await bot.answer_guest_query(query, article)  # one answer per query
    late = telegram.guest_query(7, "@prompt2pic_bot a dog", chat_id=-900)
    telegram.guest_answer_timeout_s = 0.0
    with pytest.raises(TelegramBadRequest, match="query is too old and response timeout expired"):
        await bot.answer_guest_query(late, article)
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(-900, "the bot is not a member of this chat")
    assert await bot.edit_message_text("done", inline_message_id=sent.inline_message_id) is True
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("done", inline_message_id=sent.inline_message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("done", inline_message_id="nope")
    with pytest.raises(TelegramBadRequest, match="can't upload a new file to an inline message"):
        await bot.edit_message_media(
            InputMediaPhoto(media=BufferedInputFile(tiny_png(), "a.png")), inline_message_id=sent.inline_message_id
        )
    photo = await bot.send_photo(7, BufferedInputFile(tiny_png(), "a.png"))
    file_id = photo.photo[-1].file_id
    assert await bot.edit_message_media(
        InputMediaPhoto(media=file_id, caption="a cat"), inline_message_id=sent.inline_message_id
    )
    assert telegram.inline_messages[sent.inline_message_id]["photo"] == file_id


async def test_ephemeral_messages_reach_members_only_and_are_edited_by_their_id(bot, telegram):
    telegram.send_text(8, "hi", chat_id=-901)  # user 8 is a member of group -901, user 9 is not
    with pytest.raises(TelegramBadRequest, match="Bad Request: USER_NOT_PARTICIPANT"):
        await bot.send_message(
            -901, "only for you", ephemeral_message_parameters=EphemeralMessageParameters(receiver_user_id=9)
        )
    sent = await bot.send_message(
        -901, "only for you", ephemeral_message_parameters=EphemeralMessageParameters(receiver_user_id=8)
    )
    assert sent.message_id == 0 and sent.ephemeral_message_id
    assert telegram.visible(-901) == []  # nobody else sees it
    assert [m["text"] for m in telegram.ephemerals_to(-901, 8)] == ["only for you"]
    await bot.edit_ephemeral_message_text(
        chat_id=-901, receiver_user_id=8, ephemeral_message_id=sent.ephemeral_message_id, text="changed"
    )
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_ephemeral_message_text(
            chat_id=-901, receiver_user_id=9, ephemeral_message_id=sent.ephemeral_message_id, text="changed"
        )
    assert [m["text"] for m in telegram.ephemerals_to(-901, 8)] == ["changed"]
