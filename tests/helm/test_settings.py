"""The chart's app settings are the README's settings table: every environment variable the chart
renders and every name in a values file's `config` is a row of that table (and a Settings field),
the rendered values are accepted by Settings, every secret setting comes only from a Secret, and
no secret value is rendered by default."""

from __future__ import annotations

import base64
import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from config.settings import Settings
from tests.helm.conftest import CHART, VALUE_SETS, Helm, container_env

# The first test may wait for the one-off build of helm (a few minutes on two cores).
pytestmark = pytest.mark.timeout(1800)

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")

# Settings of issue 16 (Kafka SASL, PostgreSQL) that the chart renders only when asked
# (kafka.sasl.enabled + kafka.sasl.passToApp, database.passToApp): values-cloudru.yaml asks.
ISSUE_16 = {
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "DATABASE_URL",
    "USER_STORE",
}
# Not secret settings the chart still takes from the Secret.
FROM_SECRET = {"KAFKA_SASL_USERNAME"}
SECRET_FIELDS = {name.upper() for name, f in Settings.model_fields.items() if f.annotation is SecretStr}


def readme_names() -> set[str]:
    table = README.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0]
    names = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.M))
    assert len(names) > 40
    return names


def settings_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def rendered_env(rendered) -> dict[str, dict[str, dict]]:
    return {f"{w['metadata']['name']}/{c['name']}": container_env(c) for w, c in rendered.containers()}


def values_config_names() -> dict[str, set[str]]:
    """Setting names in the `config` maps of every values file."""
    found: dict[str, set[str]] = {}
    for path in sorted(CHART.glob("values*.yaml")):
        values = yaml.safe_load(path.read_text()) or {}
        names = set(values.get("config") or {})
        for key in ("bot", "cpuWorker", "gpuWorker"):
            names |= set((values.get(key) or {}).get("config") or {})
        found[path.name] = names
    return found


def test_readme_table_is_the_settings_class():
    assert readme_names() == settings_names(), "run: python tools/settings_table.py --write"


def test_every_rendered_env_name_is_a_setting_in_the_readme_table(rendered):
    table = readme_names()
    for container, env in rendered_env(rendered).items():
        unknown = set(env) - table
        assert not unknown, f"{container}: {sorted(unknown)} are not in the README settings table"


def test_values_files_name_only_settings_of_the_readme_table():
    table = readme_names()
    for name, names in values_config_names().items():
        assert names <= table, f"{name}: {sorted(names - table)} are not in the README settings table"


def test_chart_managed_settings_are_real():
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    for block in ("prompt2pic.managedSettings", "prompt2pic.secretSettings"):
        body = helpers.split(f'define "{block}" -}}}}')[1].split("{{- end -}}")[0]
        names = set(yaml.safe_load(body))
        real = names
        assert real <= readme_names(), f"{block}: {sorted(real - readme_names())}"
        if block == "prompt2pic.secretSettings":
            assert names >= SECRET_FIELDS, f"secret settings the chart does not know: {SECRET_FIELDS - names}"


def test_rendered_values_are_accepted_by_the_settings(rendered, monkeypatch):
    for container, env in rendered_env(rendered).items():
        for name in list(os.environ):
            if name in settings_names():
                monkeypatch.delenv(name)
        for name, entry in env.items():
            # A stand-in for a Secret's value, as long as a real one (the webhook secret needs 32).
            value = entry.get("value", "x" * 64 if "valueFrom" in entry else None)
            assert value is not None, f"{container}: {name} has neither value nor valueFrom"
            monkeypatch.setenv(name, value)
        settings = Settings(_env_file=None)
        assert settings.queue_backend == "kafka" and settings.storage_backend == "s3"
        if container.endswith("/bot"):
            assert settings.telegram_mode == "webhook"
            assert settings.telegram_webhook_url.startswith("https://")


def test_secret_settings_come_only_from_secrets(rendered):
    for container, env in rendered_env(rendered).items():
        for name, entry in env.items():
            if name in SECRET_FIELDS | FROM_SECRET:
                assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], f"{container}: {name}"
    bot = [env for name, env in rendered_env(rendered).items() if name.endswith("/bot")]
    for env in bot:
        assert {"TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"} <= set(env)
    for name, env in rendered_env(rendered).items():
        if not name.endswith("/bot"):
            assert "TELEGRAM_BOT_TOKEN" not in env, "workers never see the bot token"


def test_no_secret_value_is_rendered_by_default(rendered):
    assert not rendered.kinds("Secret")
    for path in CHART.glob("values*.yaml"):
        values = yaml.safe_load(path.read_text()) or {}
        assert not any((values.get("secrets") or {}).get("values", {}).values()), f"{path.name} holds a secret"


def test_secret_values_given_at_install_time_go_only_into_the_secret(helm: Helm):
    canary = "7777777777:AAH-canary-token-that-must-stay-secret"
    rendered = helm.template(
        sets=[
            "secrets.existingSecret=",
            f"secrets.values.telegramBotToken={canary}",
            "secrets.values.telegramWebhookSecret=hook-canary",
            "secrets.values.s3AccessKeyId=key-canary",
            "secrets.values.s3SecretAccessKey=secret-canary",
            "secrets.values.s3BotAccessKeyId=bot-key-canary",
            "secrets.values.s3BotSecretAccessKey=bot-secret-canary",
        ]
    )
    (secret,) = rendered.kinds("Secret")
    assert base64.b64decode(secret["data"]["telegram-bot-token"]).decode() == canary
    for text in (canary, "hook-canary", "secret-canary", "bot-secret-canary"):
        assert text not in rendered.text
    for env in rendered_env(rendered).values():
        for name in SECRET_FIELDS & set(env):
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]


def test_a_chart_made_secret_needs_its_values(helm: Helm):
    error = helm.refusal(sets=["secrets.existingSecret=", "secrets.values.telegramBotToken=x"])
    assert "secrets.values.telegramWebhookSecret is empty" in error


@pytest.mark.parametrize("name", sorted(SECRET_FIELDS | {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "DATABASE_URL"}))
def test_a_secret_in_config_is_refused(helm: Helm, name: str):
    error = helm.refusal(sets=[f"config.{name}=leaked"])
    assert f"{name} is a secret" in error and "leaked" not in error


@pytest.mark.parametrize("name", ["KAFKA_SASL_JAAS_CONFIG", "MAX_BATCHES", "log_level"])
def test_a_name_that_is_no_setting_is_refused(helm: Helm, name: str):
    assert f"{name} is not a setting of Prompt2Pic" in helm.refusal(sets=[f"gpuWorker.config.{name}=1"])


def test_the_charts_setting_names_are_the_readme_table():
    sys.path.insert(0, str(ROOT / "tools"))
    from settings_table import CHART_SETTINGS, chart_settings

    assert CHART_SETTINGS.read_text(encoding="utf-8") == chart_settings(), "run: python tools/settings_table.py --write"
    assert set(yaml.safe_load(CHART_SETTINGS.read_text())) == readme_names()


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka.bootstrapServers"),
        ("MAX_BATCH", "cpuWorker/gpuWorker.maxBatch"),
        ("TELEGRAM_WEBHOOK_PATH", "bot.webhook.path"),
    ],
)
def test_a_chart_managed_setting_in_config_is_refused(helm: Helm, name: str, where: str):
    assert f"the chart sets {name} itself; set it through {where}" in helm.refusal(sets=[f"cpuWorker.config.{name}=1"])


def test_config_values_keep_their_form(helm: Helm):
    rendered = helm.template(sets=["config.MAX_PROMPT_CHARS=1000000", "bot.config.ALLOWED_USER_IDS=1\\,2"])
    bot = container_env(rendered.one("Deployment", "-bot")["spec"]["template"]["spec"]["containers"][0])
    assert bot["MAX_PROMPT_CHARS"]["value"] == "1000000" and bot["ALLOWED_USER_IDS"]["value"] == "1,2"
    values = CHART / "values.yaml"
    big = yaml.safe_load(values.read_text())["cpuWorker"]["maxPollIntervalMs"]
    assert big >= 100000  # a float in Helm's values: it must still render as digits
    worker = container_env(rendered.one("Deployment", "-worker-cpu")["spec"]["template"]["spec"]["containers"][0])
    assert worker["KAFKA_MAX_POLL_INTERVAL_MS"]["value"] == str(big)


def test_settings_of_issue_16_render_only_when_asked(helm: Helm):
    """The cloud.ru values pass SASL and PostgreSQL to the app; the default values pass neither
    (one bot pod's SQLite, a broker without SASL)."""
    assert settings_names() >= ISSUE_16
    rendered = helm.template(VALUE_SETS["cloudru"])
    bot = rendered_env(rendered)
    for name, env in bot.items():
        assert {"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} <= set(
            env
        ), name
        assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
        if name.endswith("/bot"):
            assert env["USER_STORE"]["value"] == "postgres" and "secretKeyRef" in env["DATABASE_URL"]["valueFrom"]
    default = rendered_env(helm.template(VALUE_SETS["default"]))
    for env in default.values():
        assert not set(env) & (ISSUE_16 - {"USER_STORE"})
