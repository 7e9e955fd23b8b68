"""Least privilege in the chart: the bot and the workers log in to Kafka as two users (each with its
role's ACLs, docs/deploy-kubernetes.md) and to S3 with two keys (the bot's only reads); a pod gets
its own role's credentials and never the other role's, and KEDA reads the lag as the workers."""

from __future__ import annotations

import base64

import pytest

from tests.helm.conftest import VALUE_SETS, Helm, Rendered, container_env

pytestmark = pytest.mark.timeout(1800)

BOT_KEYS = {"kafka-bot-username", "kafka-bot-password", "s3-bot-access-key-id", "s3-bot-secret-access-key"}
WORKER_KEYS = {"kafka-worker-username", "kafka-worker-password", "s3-access-key-id", "s3-secret-access-key"}
CREDENTIALS = ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")


def secret_refs(rendered: Rendered, suffix: str) -> dict[str, tuple[str, str]]:
    """env name -> (Secret name, key) of the app container of the Deployment named *suffix."""
    pod = rendered.one("Deployment", suffix)["spec"]["template"]["spec"]
    env = container_env(pod["containers"][0])
    return {
        name: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for name, e in env.items()
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_no_pod_gets_the_other_roles_credentials(rendered: Rendered):
    for workload, container in rendered.containers():
        keys = {
            e["valueFrom"]["secretKeyRef"]["key"]
            for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        bot = workload["metadata"]["name"].endswith("-bot")
        assert not keys & (WORKER_KEYS if bot else BOT_KEYS), (workload["metadata"]["name"], keys)
        assert {"s3-bot-access-key-id" if bot else "s3-access-key-id"} <= keys


def test_cloudru_bot_and_workers_log_in_as_two_kafka_users(helm: Helm):
    rendered = helm.template(VALUE_SETS["cloudru"])
    bot, worker = secret_refs(rendered, "-bot"), secret_refs(rendered, "-worker-gpu")
    assert bot["KAFKA_SASL_USERNAME"][1] == "kafka-bot-username"
    assert bot["KAFKA_SASL_PASSWORD"][1] == "kafka-bot-password"
    assert worker["KAFKA_SASL_USERNAME"][1] == "kafka-worker-username"
    assert worker["KAFKA_SASL_PASSWORD"][1] == "kafka-worker-password"
    assert bot["S3_ACCESS_KEY_ID"][1] == "s3-bot-access-key-id"
    assert worker["S3_ACCESS_KEY_ID"][1] == "s3-access-key-id"
    (auth,) = rendered.kinds("TriggerAuthentication")
    assert {r["key"] for r in auth["spec"]["secretTargetRef"]} == {"kafka-worker-username", "kafka-worker-password"}


def test_each_role_may_have_secrets_of_its_own(helm: Helm):
    rendered = helm.template(
        VALUE_SETS["cloudru"],
        [
            "kafka.sasl.botExistingSecret=bot-kafka",
            "kafka.sasl.workerExistingSecret=worker-kafka",
            "s3.botExistingSecret=bot-s3",
        ],
    )
    bot, worker = secret_refs(rendered, "-bot"), secret_refs(rendered, "-worker-gpu")
    assert {bot[n][0] for n in CREDENTIALS[:2]} == {"bot-kafka"}
    assert {bot[n][0] for n in CREDENTIALS[2:]} == {"bot-s3"}
    assert {worker[n][0] for n in CREDENTIALS[:2]} == {"worker-kafka"}
    assert {worker[n][0] for n in CREDENTIALS[2:]} == {"prompt2pic-secrets"}
    (auth,) = rendered.kinds("TriggerAuthentication")
    assert {r["name"] for r in auth["spec"]["secretTargetRef"]} == {"worker-kafka"}


def test_a_chart_made_secret_holds_two_kafka_users_and_two_s3_keys(helm: Helm):
    values = {
        "telegramBotToken": "t",
        "telegramWebhookSecret": "w" * 32,
        "s3AccessKeyId": "worker-key",
        "s3SecretAccessKey": "ws",
        "s3BotAccessKeyId": "bot-key",
        "s3BotSecretAccessKey": "bs",
        "kafkaBotUsername": "p2p-bot",
        "kafkaBotPassword": "bp",
        "kafkaWorkerUsername": "p2p-worker",
        "kafkaWorkerPassword": "wp",
        "databaseUrl": "postgresql://u:p@db/p2p",
    }
    rendered = helm.template(
        VALUE_SETS["cloudru"], ["secrets.existingSecret=", *(f"secrets.values.{k}={v}" for k, v in values.items())]
    )
    (secret,) = rendered.kinds("Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["kafka-bot-username"] == "p2p-bot" and data["kafka-worker-username"] == "p2p-worker"
    assert data["s3-bot-access-key-id"] == "bot-key" and data["s3-access-key-id"] == "worker-key"
    name = secret["metadata"]["name"]
    assert secret_refs(rendered, "-bot")["KAFKA_SASL_USERNAME"] == (name, "kafka-bot-username")
    assert secret_refs(rendered, "-worker-gpu")["KAFKA_SASL_USERNAME"] == (name, "kafka-worker-username")


@pytest.mark.parametrize(
    ("same", "message"),
    [
        (
            ["secrets.values.kafkaBotUsername=p2p", "secrets.values.kafkaWorkerUsername=p2p"],
            "give each role its own Kafka user",
        ),
        (["secrets.values.s3BotAccessKeyId=k", "secrets.values.s3AccessKeyId=k"], "give the bot its own read-only key"),
    ],
)
def test_one_credential_for_both_roles_is_refused(helm: Helm, same: list[str], message: str):
    given = [
        "secrets.existingSecret=",
        "secrets.values.telegramBotToken=t",
        "secrets.values.telegramWebhookSecret=w",
        "secrets.values.s3AccessKeyId=a",
        "secrets.values.s3SecretAccessKey=s",
        "secrets.values.s3BotAccessKeyId=b",
        "secrets.values.s3BotSecretAccessKey=bs",
        "secrets.values.kafkaBotUsername=x",
        "secrets.values.kafkaBotPassword=x",
        "secrets.values.kafkaWorkerUsername=y",
        "secrets.values.kafkaWorkerPassword=y",
    ]
    assert message in helm.refusal(
        VALUE_SETS["cloudru"], [*given, *same, "database.passToApp=false", "bot.autoscaling.enabled=false"]
    )


def test_a_chart_made_secret_needs_both_kafka_users(helm: Helm):
    error = helm.refusal(
        VALUE_SETS["cloudru"],
        [
            "secrets.existingSecret=",
            "secrets.values.telegramBotToken=t",
            "secrets.values.telegramWebhookSecret=w",
            "secrets.values.s3AccessKeyId=a",
            "secrets.values.s3SecretAccessKey=s",
            "secrets.values.s3BotAccessKeyId=b",
            "secrets.values.s3BotSecretAccessKey=bs",
            "secrets.values.kafkaWorkerUsername=y",
            "secrets.values.kafkaWorkerPassword=y",
            "database.passToApp=false",
            "bot.autoscaling.enabled=false",
        ],
    )
    assert "secrets.values.kafkaBotUsername is empty" in error
