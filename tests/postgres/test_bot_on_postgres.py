"""The bot with USER_STORE=postgres, wired by the real composition root and run by the real
``app.serve``: the user store, its delivery log and the shared send budget on one database,
the database in /readyz, and a prompt answered with its picture."""

from __future__ import annotations

import aiohttp
import asyncpg

from adapters.postgres import PostgresDeliveryLog, PostgresUserStore
from adapters.postgres.coordination import PostgresSendCoordination
from tests.telegram.conftest import free_port, start_service  # noqa: F401  (the fixture)


async def test_the_bot_runs_on_the_shared_store(postgres_url, start_service, telegram):  # noqa: F811
    # postgres_url first: its database is dropped only after the service has stopped
    port = free_port()
    service = await start_service(user_store="postgres", database_url=postgres_url, worker_id="bot-pg", http_port=port)
    runtime = service.parts.telegram
    store, log, coordination = runtime.resources
    assert isinstance(store, PostgresUserStore) and isinstance(log, PostgresDeliveryLog)
    assert isinstance(coordination, PostgresSendCoordination) and store.db is log.db
    # the send coordination on a small pool of its own, to the same database
    assert coordination.db is not store.db and coordination.db.dsn == store.db.dsn
    assert runtime.sender.shared is coordination and coordination.on_share == runtime.sender.set_rate_limit

    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as response:
        assert response.status == 200
        assert (await response.json())["checks"] == {"started": True, "queue": True, "database": True, "telegram": True}

    telegram.send_text(71, "a lighthouse in the fog")
    [photo] = await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 71, timeout=20)
    assert "a lighthouse in the fog" in photo.params["caption"]
    conn = await asyncpg.connect(postgres_url)
    try:  # the instance's heartbeat, and the delivery claimed under its stable name
        assert await conn.fetchval("SELECT owner FROM bot_instances") == "bot-pg"
        assert await conn.fetchval("SELECT owner FROM deliveries") == "bot-pg"
    finally:
        await conn.close()
