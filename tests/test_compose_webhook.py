"""Webhook mode through compose (issue 29, item 4): the settings a user puts in .env reach the bot
container through docker-compose.yml's interpolation (containers never read .env), and the
webhook's secret token travels as a Compose file secret that the image's entry point reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from config.settings import Settings
from tests.test_compose import (
    ENTRYPOINT,
    ENV_EXAMPLE,
    ROOT,
    environment_of,
    example_env,
    interpolate_tree,
    raw_compose,
    read_env_file,
)

WEBHOOK_ENV = {
    "TELEGRAM_MODE": "webhook",
    "TELEGRAM_WEBHOOK_URL": "https://bot.acme-lab.ru/telegram/webhook",
}


def bot_service(env: dict[str, str]) -> dict:
    return interpolate_tree(raw_compose(), env)["services"]["bot"]


def test_env_example_keeps_polling_by_default():
    example = read_env_file(ENV_EXAMPLE)
    assert example["TELEGRAM_MODE"] == "polling" and example["TELEGRAM_WEBHOOK_URL"] == ""
    as_given = {**example_env(), "TELEGRAM_WEBHOOK_URL": ""}  # (example_env fills blanks with test values)
    bot = environment_of(bot_service(as_given))
    assert bot["TELEGRAM_MODE"] == "polling" and bot["TELEGRAM_WEBHOOK_URL"] == ""
    without = {k: v for k, v in example_env().items() if not k.startswith("TELEGRAM_")}
    assert environment_of(bot_service(without))["TELEGRAM_MODE"] == "polling"  # ${VAR:-default}


def test_webhook_settings_in_env_reach_the_bot_and_the_secret_is_a_file_secret():
    data = interpolate_tree(raw_compose(), {**example_env(), **WEBHOOK_ENV})
    bot = data["services"]["bot"]
    env = environment_of(bot)
    assert {k: env[k] for k in WEBHOOK_ENV} == WEBHOOK_ENV
    assert "TELEGRAM_WEBHOOK_SECRET" not in env  # never a plain variable
    assert env["TELEGRAM_WEBHOOK_SECRET_FILE"] == "/run/secrets/telegram_webhook_secret"
    assert "telegram_webhook_secret" in bot["secrets"]
    secret_dir = example_env()["P2P_SECRETS_DIR"]
    assert data["secrets"]["telegram_webhook_secret"] == {"file": f"{secret_dir}/telegram_webhook_secret"}
    for name in ("worker", "worker-gpu"):  # the workers never see it
        assert "telegram_webhook_secret" not in data["services"][name].get("secrets", [])
    # The proxy forwards the path the app serves (TELEGRAM_WEBHOOK_PATH's default) to the bot.
    path = Settings.model_fields["telegram_webhook_path"].default
    assert WEBHOOK_ENV["TELEGRAM_WEBHOOK_URL"].endswith(path)
    assert f"handle {path}* {{\n\t\treverse_proxy bot:8080" in (ROOT / "deploy/caddy/Caddyfile").read_text()


def test_the_entry_point_gives_the_app_the_webhook_settings(tmp_path):
    """The bot container's environment as compose makes it, the secret files as compose mounts them
    (the webhook secret written by `openssl rand -hex 32 > file`, with its newline), through the
    image's entry point into the app's own Settings: webhook mode, the URL, the secret without the
    newline, and no *_FILE variable left."""
    env = environment_of(bot_service({**example_env(), **WEBHOOK_ENV}))
    webhook_secret = "9f" * 32
    files = {
        "telegram_bot_token": "123456:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ",
        "telegram_webhook_secret": webhook_secret + "\n",
        "s3_bot_secret_access_key": "bot-s3-secret",
    }
    for name, value in files.items():
        (tmp_path / name).write_text(value)
    for key, value in list(env.items()):
        if value.startswith("/run/secrets/"):
            env[key] = str(tmp_path / value.removeprefix("/run/secrets/"))
    probe = (
        "import json; from config.settings import Settings; s = Settings(_env_file=None); "
        "print(json.dumps({'mode': str(s.telegram_mode.value), 'url': s.telegram_webhook_url, "
        "'secret': s.telegram_webhook_secret.get_secret_value(), "
        "'files': sorted(k for k in __import__('os').environ if k.endswith('_FILE'))}))"
    )
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), sys.executable, "-c", probe],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "mode": "webhook",
        "url": WEBHOOK_ENV["TELEGRAM_WEBHOOK_URL"],
        "secret": webhook_secret,
        "files": [],
    }
    assert webhook_secret not in done.stderr


def test_an_empty_webhook_secret_file_stops_the_container(tmp_path):
    (tmp_path / "secret").write_text("")
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "true"],
        env={"PATH": os.environ["PATH"], "TELEGRAM_WEBHOOK_SECRET_FILE": str(tmp_path / "secret")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 66 and "TELEGRAM_WEBHOOK_SECRET" in done.stderr


def test_workers_grace_covers_their_batch():
    """CPU workers make one fast picture per batch (19-75 s on 2 cores) within a 180 s grace
    period, GPU workers have 120 s; compose's stop_grace_period leaves each app its grace + 30 s."""
    from tests.test_compose import duration_seconds

    services = interpolate_tree(raw_compose(), example_env())["services"]
    cpu, gpu, bot = (environment_of(services[n]) for n in ("worker", "worker-gpu", "bot"))
    assert cpu["MAX_BATCH"] == "1" and cpu["QUALITY_CAP"] == "fast" and float(cpu["SHUTDOWN_GRACE_S"]) >= 105
    assert gpu["QUALITY_CAP"] == "" and float(gpu["SHUTDOWN_GRACE_S"]) >= 90
    for name, env in (("worker", cpu), ("worker-gpu", gpu), ("bot", bot)):
        assert duration_seconds(services[name]["stop_grace_period"]) == float(env["SHUTDOWN_GRACE_S"]) + 30, name
