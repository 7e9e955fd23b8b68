"""A bot process killed with SIGKILL between a Telegram Stars payment and its credit, or just
after the credit, then started again (the real app as a subprocess, the strict fake Bot API in
this process): the payment is credited exactly once. The restarted bot gets the update again if
it was not confirmed, and reads getStarTransactions at start for a payment whose update polling
had confirmed already; the store's charge id keeps either from crediting it twice."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from tests.fakes.telegram import FakeBotAPI
from tests.faults.rig import Proc

pytestmark = pytest.mark.slow

USER = 6100


def env(telegram: FakeBotAPI, folder: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("P2P_", "KAFKA_", "S3_", "TELEGRAM_"))}
    base.update(
        {
            "QUEUE_BACKEND": "memory",
            "STORAGE_BACKEND": "local",
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_URL": telegram.base_url,
            "GENERATOR": "fake",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": "0",
            "METRICS_ENABLED": "false",
            "SQLITE_PATH": str(folder / "bot.sqlite3"),
            "MEMORY_QUEUE_FILE": str(folder / "queue.json"),
            "LOCAL_STORAGE_DIR": str(folder / "images"),
            "PAYMENTS": "stars",
            "STARS_PACKS": "10:50,50:200",
            "STARS_CATCH_UP_S": "0",
            "SAFETY_IMAGE_DETECTOR": "none",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return base


def ledger(folder: Path) -> tuple[int, list[tuple[str, int, str]]]:
    conn = sqlite3.connect(folder / "bot.sqlite3")
    try:
        row = conn.execute("SELECT credits FROM users WHERE user_id = ?", (USER,)).fetchone()
        rows = conn.execute("SELECT kind, credits, charge_id FROM credit_ledger WHERE user_id = ?", (USER,)).fetchall()
    finally:
        conn.close()
    return (row[0] if row else 0), rows


async def invoice(telegram: FakeBotAPI) -> int:
    telegram.send_text(USER, "/buy")
    [packs] = await telegram.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == USER and c.ok, 60)
    telegram.press(USER, packs.params["_message_id"], packs.button("10 ")["callback_data"])
    [sent] = await telegram.wait_for(lambda c: c.method == "sendInvoice" and c.ok, 30)
    return int(sent.params["_message_id"])


@pytest.mark.parametrize("point", ["before_credit", "after_credit"])
async def test_a_bot_killed_around_the_credit_credits_the_payment_once(telegram, tmp_path, point):
    folder = tmp_path / "bot"
    folder.mkdir()
    bot = await Proc("bot-1", "all", env(telegram, folder), folder / "bot.log").start(crash_at=point)
    await bot.wait_ready()
    message_id = await invoice(telegram)
    query_id = telegram.pay(USER, message_id)
    await bot.wait_crashed()
    charge = telegram.charge_of(query_id)
    assert charge is not None and telegram.stars_spent[USER] == 50  # paid; the bot died on it
    credits, rows = ledger(folder)
    assert credits == (10 if point == "after_credit" else 0)
    again = await Proc("bot-1", "all", env(telegram, folder), folder / "bot.log").start()
    try:
        await again.wait_ready()
        for _ in range(300):
            credits, rows = ledger(folder)
            if credits:
                break
            await asyncio.sleep(0.1)
        telegram.send_text(USER, "/credits")  # handled after whatever came before it in this chat
        await telegram.wait_for(lambda c: c.ok and c.chat_id == USER and "Credits: " in c.text, 30)
        credits, rows = ledger(folder)
        assert credits == 10
        assert rows == [("purchase", 10, charge)]
        thanks = [c for c in telegram.calls if c.ok and c.chat_id == USER and "credits added" in c.text]
        assert len(thanks) <= 1
    finally:
        assert await again.terminate() == 0
