"""Secret settings: surrounding whitespace goes whatever the source (a Kubernetes Secret made from a
file that ends in a newline, ``.env``, the environment); the webhook secret follows Telegram's
alphabet with our floor of 32 characters, and a refusal names the setting, never the value."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from config.settings import Settings

SECRET_FIELDS = [name for name, f in Settings.model_fields.items() if f.annotation is SecretStr]
HEX64 = "0123456789abcdef" * 4  # openssl rand -hex 32


def test_every_secret_setting_loses_the_whitespace_around_it(monkeypatch):
    assert {"telegram_bot_token", "telegram_webhook_secret", "link_signing_key"} <= set(SECRET_FIELDS)
    for name in SECRET_FIELDS:
        value = HEX64 if name != "database_url" else "postgresql://p2p:pw@db:5432/p2p"
        monkeypatch.setenv(name.upper(), f" {value}\r\n")
    settings = Settings(_env_file=None)
    for name in SECRET_FIELDS:
        value = getattr(settings, name).get_secret_value()
        assert value == value.strip() and value, name


def test_a_secret_file_written_by_openssl_gives_the_secret_without_its_newline(tmp_path, monkeypatch):
    """``openssl rand -hex 32 > file`` writes 65 bytes; the Secret made from it reaches the pod
    as an environment variable ending in a newline (docs/deploy-kubernetes.md)."""
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(HEX64 + "\n")
    assert len(secret_file.read_bytes()) == 65
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", secret_file.read_text())
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:AAE-token_from_botfather\n")
    settings = Settings(_env_file=None)
    assert settings.telegram_webhook_secret.get_secret_value() == HEX64
    assert settings.telegram_bot_token.get_secret_value() == "123456:AAE-token_from_botfather"


def test_secrets_in_a_dotenv_file_are_stripped_too(tmp_path):
    env = tmp_path / ".env"
    env.write_text(f'TELEGRAM_WEBHOOK_SECRET="{HEX64}  "\nLINK_SIGNING_KEY=" key "\n')
    settings = Settings(_env_file=env)
    assert settings.telegram_webhook_secret.get_secret_value() == HEX64
    assert settings.link_signing_key.get_secret_value() == "key"


@pytest.mark.parametrize("secret", ["a" * 32, "A-z_0" * 20, "x" * 256, HEX64])
def test_webhook_secrets_telegram_accepts_and_long_enough_are_taken(secret):
    assert Settings(_env_file=None, telegram_webhook_secret=secret).telegram_webhook_secret.get_secret_value() == secret


@pytest.mark.parametrize(
    "secret",
    [
        "k",  # Telegram takes it; anyone could guess it
        "Short_secret-31-characters-long",  # 31
        "x" * 257,  # above Telegram's limit
        "has spaces inside the secret value, 40 chars",
        "punctuation!" * 4,
        "секрет-на-кириллице-" * 2,  # not ASCII
        HEX64[:40] + "\n" + HEX64[:10],  # a newline inside is not whitespace around it
    ],
)
def test_webhook_secrets_that_are_short_or_outside_the_alphabet_are_refused_by_name(secret):
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, telegram_webhook_secret=secret)
    message = str(refused.value)
    assert "TELEGRAM_WEBHOOK_SECRET" in message and "32 to 256" in message
    if len(secret) > 4:  # (a one-letter value is in any message)
        assert secret.strip() not in message  # the value itself never shows


def test_no_webhook_secret_is_fine_for_polling():
    assert Settings(_env_file=None).telegram_webhook_secret.get_secret_value() == ""
