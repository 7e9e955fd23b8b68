"""Picture links on a Bot API that refuses URL buttons on localhost, IP addresses and dotless
hosts like Telegram does (``Bad Request: BUTTON_URL_INVALID``, the whole call refused): every
prompt still delivers its picture, /history answers, the status message ends; for the embedded
configuration (memory queue, local folder) and for Kafka + S3 (the real broker, moto over HTTP).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from adapters.telegram.links import LinkUse, link_use
from config.settings import Settings
from config.telegram_wiring import link_policy
from tests.fakes.telegram import FakeBotAPI
from tests.telegram.helpers import Chat, png_size


@pytest.mark.parametrize(
    ("url", "use"),
    [
        ("https://img.example.com/images/a.png?X-Amz-Signature=1", LinkUse.BUTTON),
        ("http://p2p.example.org:8080/files/images/a.png", LinkUse.BUTTON),
        ("http://93.184.216.34:9000/prompt2pic/a.png", LinkUse.TEXT),  # a public address: text
        ("http://127.0.0.1:9000/prompt2pic/a.png", LinkUse.NONE),
        ("http://localhost:9000/prompt2pic/a.png", LinkUse.NONE),
        ("http://192.168.1.20:9000/prompt2pic/a.png", LinkUse.NONE),
        ("http://minio:9000/prompt2pic/a.png", LinkUse.NONE),
        ("file:///data/images/a.png", LinkUse.NONE),
        ("", LinkUse.NONE),
    ],
)
def test_link_policy(url, use):
    assert link_use(url) == use


def test_startup_warning_names_the_setting():
    def warn(**values: Any) -> str | None:
        return link_policy(Settings(_env_file=None, **values)).warning()

    assert "PUBLIC_BASE_URL" in (warn(public_base_url="") or "")
    assert "PUBLIC_BASE_URL" in (warn(public_base_url="http://127.0.0.1:8080") or "")
    assert warn(public_base_url="https://p2p.example.com") is None
    s3 = dict(storage_backend="s3", s3_endpoint_url="http://minio:9000")
    assert "S3_PUBLIC_ENDPOINT_URL" in (warn(**s3) or "")
    assert "S3_PUBLIC_ENDPOINT_URL" in (warn(**s3, s3_public_endpoint_url="http://localhost:9000") or "")
    assert "as text" in (warn(**s3, s3_public_endpoint_url="http://93.184.216.34:9000") or "")
    assert warn(**s3, s3_public_endpoint_url="https://img.example.com") is None
    assert warn(storage_backend="s3") is None  # AWS itself: links on amazonaws.com


async def _prompts_deliver(tg: FakeBotAPI, users: list[int], *, link: LinkUse, timeout: float = 30) -> None:
    """Each user sends a prompt: the photo comes with the link the policy allows, the status
    message is gone, /history answers with a button per picture."""
    chats = [Chat(tg, user) for user in users]
    for chat in chats:
        chat.send(f"a harbour at night for {chat.user_id}")
    for chat in chats:
        [status] = await chat.wait(lambda c: c.method == "sendMessage" and c.text.startswith("⏳"), timeout=timeout)
        [photo] = await chat.wait(lambda c: c.method == "sendPhoto", timeout=timeout)
        assert f"for {chat.user_id}" in photo.text and png_size(photo.files["photo"]) == (512, 384)
        texts = [b["text"] for b in photo.buttons()]
        assert "📄 Original PNG" in texts  # the full size, always
        urls = [b["url"] for b in photo.buttons() if "url" in b]
        if link == LinkUse.BUTTON:
            assert len(urls) == 1 and link_use(urls[0]) == LinkUse.BUTTON
        else:
            assert urls == []
        assert ("🔗 Full size: http" in photo.text) is (link == LinkUse.TEXT)
        refused = [c for c in chat.since_mark() if not c.ok]
        assert refused == [], [(c.method, c.error) for c in refused]
        message_id = int(status.params["_message_id"])
        await chat.wait(lambda c, m=message_id: c.method == "deleteMessage" and int(c.params["message_id"]) == m)
        assert message_id not in tg.messages  # the status ended (deleted), not left at 100%
    for chat in chats:
        history = await chat.ask("/history")
        assert "Your last 1 pictures" in history and "a harbour at night" in history
        [reply] = [c for c in chat.since_mark() if c.method == "sendMessage" and c.ok]
        buttons = reply.buttons()
        assert len(buttons) == 1
        if link == LinkUse.BUTTON:
            assert "links open the full size" in history and link_use(buttons[0]["url"]) == LinkUse.BUTTON
        else:
            assert "buttons send the original PNG" in history and buttons[0]["callback_data"].startswith("r:png:")


@pytest.mark.parametrize(
    ("base", "link"),
    [
        ("", LinkUse.NONE),
        ("http://127.0.0.1:8080", LinkUse.NONE),
        ("http://93.184.216.34:8080", LinkUse.TEXT),
        ("https://p2p.example.com", LinkUse.BUTTON),
    ],
    ids=["no-base", "loopback", "public-ip", "host-name"],
)
async def test_embedded(start_service, telegram, base, link, caplog):
    await start_service(public_base_url=base)
    await _prompts_deliver(telegram, [101, 102], link=link)
    warned = [r.getMessage() for r in caplog.records if "PUBLIC_BASE_URL" in r.getMessage()]
    assert len(warned) == (0 if link == LinkUse.BUTTON else 1)  # once, naming the setting


async def test_a_refused_link_button_is_dropped_and_the_picture_sent(start_service, telegram):
    await start_service(public_base_url="https://p2p.example.com")
    telegram.fail("sendPhoto", 400, "Bad Request: BUTTON_URL_INVALID")  # Telegram refuses it anyway
    chat = Chat(telegram, 103)
    chat.send("a lantern")
    [photo] = await chat.wait(lambda c: c.method == "sendPhoto", timeout=20)
    [refused] = [c for c in chat.since_mark() if c.method == "sendPhoto" and not c.ok]
    assert any("url" in b for b in refused.buttons())
    texts = [b["text"] for b in photo.buttons()]
    assert "🔁 New seed" in texts and not any("url" in b for b in photo.buttons())


@pytest.mark.parametrize("public", ["unset", "localhost"])
async def test_kafka_and_s3(start_service, telegram, kafka_bootstrap, s3_endpoint, s3_bucket, public):
    run = uuid.uuid4().hex[:8]
    await start_service(
        queue_backend="kafka",
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_requests_topic=f"links-{run}.requests",
        kafka_results_topic=f"links-{run}.results",
        kafka_dead_letter_topic=f"links-{run}.dead",
        kafka_worker_group=f"links-{run}-workers",
        kafka_bot_group=f"links-{run}-bots",
        kafka_partitions=2,
        storage_backend="s3",
        s3_bucket=s3_bucket,
        s3_endpoint_url=s3_endpoint.url,  # http://127.0.0.1:<port>
        s3_public_endpoint_url="" if public == "unset" else s3_endpoint.public_url,  # http://localhost:<port>
        s3_region=s3_endpoint.region,
        s3_access_key_id=s3_endpoint.access_key_id,
        s3_secret_access_key=s3_endpoint.secret_access_key,
    )
    await _prompts_deliver(telegram, [201, 202, 203], link=LinkUse.NONE, timeout=60)
    # the original PNG comes from S3, byte for byte what the photo was made from
    chat = Chat(telegram, 201)
    [photo] = [c for c in telegram.calls_of("sendPhoto", 201) if c.ok]
    png = next(b for b in photo.buttons() if b["text"] == "📄 Original PNG")
    chat.press(int(photo.params["_message_id"]), png["callback_data"])
    [document] = await chat.wait(lambda c: c.method == "sendDocument", timeout=20)
    assert document.files["document"] == photo.files["photo"]


def test_compose_default_links_are_explained_and_the_documented_value_makes_buttons():
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    compose = (repo / "docker-compose.yml").read_text()
    [default] = re.findall(r"S3_PUBLIC_ENDPOINT_URL: \$\{S3_PUBLIC_ENDPOINT_URL:-([^}]*)\}", compose)
    warning = link_policy(Settings(_env_file=None, storage_backend="s3", s3_public_endpoint_url=default)).warning()
    if link_use(default) != LinkUse.BUTTON:  # a local default: the bot says what to set, and so do the files
        assert warning and "S3_PUBLIC_ENDPOINT_URL" in warning
        assert "BUTTON_URL_INVALID" in (repo / ".env.example").read_text()
        assert "Links Telegram accepts" in (repo / "docs" / "deploy.md").read_text()
    documented = re.findall(r"S3_PUBLIC_ENDPOINT_URL=(https://\S+)", (repo / ".env.example").read_text())
    assert documented and all(link_use(url) == LinkUse.BUTTON for url in documented)
