"""Lanes through the real aiogram stack and the strict fake Bot API: the live status says the
lane, a user past the daily allowance goes relaxed (and still gets the picture), /balance says
what is left and when it renews, in English and Russian; /balance is in the command menu."""

from __future__ import annotations

from tests.telegram.helpers import Chat


async def draw(chat: Chat, prompt: str) -> str:
    """The prompt's first status, once its picture came."""
    status = await chat.ask(prompt)
    await chat.photo(timeout=20)
    return status


async def test_the_allowance_the_lane_in_the_status_and_balance(start_service, telegram):
    await start_service(daily_allowance=2, lanes_relaxed_after=0)
    chat = Chat(telegram, 150)
    balance = await chat.ask("/balance")
    assert "Your next picture: ⚡ priority lane." in balance
    assert "Priority pictures left today: 2 of 2. Renews at 00:00 UTC (in " in balance
    assert "Pictures in the last" not in balance  # no use threshold set: not mentioned
    first = await draw(chat, "a red fox in the snow")
    assert first.startswith("⏳ Queued") and "⚡ Priority lane" in first
    assert "⚡ Priority lane" in await draw(chat, "a lighthouse at dusk")
    third = await draw(chat, "a small boat on a lake")  # past the allowance: drawn all the same
    assert "🐢 Relaxed lane: the service is busy" in third
    balance = await chat.ask("/balance")
    assert "Priority pictures left today: 0 of 2." in balance
    assert "Your next picture: 🐢 relaxed lane" in balance


async def test_balance_in_russian_with_the_use_threshold(start_service, telegram):
    await start_service(lanes_relaxed_after=1)
    chat = Chat(telegram, 151, lang="ru")
    assert "⚡ Приоритетная очередь" in await draw(chat, "рыжая лиса в снегу")
    assert "🐢 Спокойная очередь: сервис загружен" in await draw(chat, "маяк на закате")
    balance = await chat.ask("/balance")
    assert balance.startswith("📊 Ваш баланс")
    assert "Следующая картинка: 🐢 спокойная очередь" in balance
    assert "Картинок за последние 60 мин: 2. С 1-й ваши картинки ждут в спокойной очереди." in balance
    assert "Дневного лимита на этом сервисе нет." in balance


async def test_balance_is_in_the_command_menu(start_service, telegram):
    await start_service()
    chat = Chat(telegram, 152)
    await chat.ask("/start")
    menus = [c for c in telegram.calls if c.method == "setMyCommands" and c.ok]
    assert menus, "no command menu was set"
    for call in menus:
        assert "balance" in str(call.params.get("commands")), call.params
