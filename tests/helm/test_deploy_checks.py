"""Rendered fixes of issue 29: the bot reaches PostgreSQL through its NetworkPolicy, one bot
without PostgreSQL, placeholders refused at render time, the k3s recipe's ingress rule."""

from __future__ import annotations

import json

import pytest

from tests.helm.conftest import CHART, RELEASE, VALUE_SETS, Helm


def bot_egress_ports(rendered) -> set[int]:
    policy = rendered.one("NetworkPolicy", "-bot")["spec"]
    return {p["port"] for rule in policy["egress"] for p in rule["ports"]}


def test_the_bot_may_reach_postgresql_when_it_uses_it(helm: Helm):
    """cloud.ru's values pass DATABASE_URL to the bots: their policy lets them out to 5432 (only
    them: the workers never talk to the database)."""
    cloud = helm.template(VALUE_SETS["cloudru"])
    assert 5432 in bot_egress_ports(cloud)
    bot = cloud.one("Deployment", "-bot")["spec"]["template"]["spec"]["containers"][0]
    assert any(e["name"] == "DATABASE_URL" for e in bot["env"])
    workers = cloud.one("NetworkPolicy", "-workers")["spec"]
    assert 5432 not in {p["port"] for rule in workers["egress"] for p in rule["ports"]}
    # The port and the addresses come from values (e.g. PgBouncer on 6432 in a private block).
    custom = helm.template(
        VALUE_SETS["cloudru"],
        ["networkPolicy.database.ports={6432}", "networkPolicy.database.to[0].ipBlock.cidr=10.20.0.0/16"],
    )
    [rule] = [r for r in custom.one("NetworkPolicy", "-bot")["spec"]["egress"] if r["ports"][0]["port"] == 6432]
    assert rule == {"ports": [{"protocol": "TCP", "port": 6432}], "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}


@pytest.mark.parametrize("value_set", ["default", "gpu", "scale-to-zero"])
def test_no_database_rule_without_the_database(helm: Helm, value_set: str):
    assert 5432 not in bot_egress_ports(helm.template(VALUE_SETS[value_set]))


def test_every_value_set_that_passes_the_database_opens_its_port(helm: Helm, value_set: str):
    rendered = helm.template(VALUE_SETS[value_set])
    wanted = set(rendered.values["networkPolicy"]["database"]["ports"])
    assert (wanted <= bot_egress_ports(rendered)) == bool(rendered.values["database"]["passToApp"])


@pytest.mark.parametrize(
    ("sets", "named"),
    [
        (["bot.replicas=2"], "bot.replicas is 2"),
        (["bot.autoscaling.enabled=true"], "bot.autoscaling.maxReplicas is 6"),
        (
            ["bot.autoscaling.enabled=true", "bot.autoscaling.minReplicas=1", "bot.autoscaling.maxReplicas=3"],
            "bot.autoscaling.maxReplicas is 3",
        ),
    ],
)
def test_several_bots_on_sqlite_are_refused(helm: Helm, sets: list[str], named: str):
    error = helm.refusal(sets=sets)
    assert named in error and "database.passToApp is false" in error


def test_one_bot_on_sqlite_and_several_on_postgresql_render(helm: Helm):
    one = helm.template()
    assert one.one("Deployment", "-bot")["spec"]["replicas"] == 1
    assert "minAvailable" not in one.one("PodDisruptionBudget", "-bot")["spec"]  # a drain is not blocked
    shared = helm.template(VALUE_SETS["cloudru"])
    assert shared.one("HorizontalPodAutoscaler", "-bot")["spec"]["maxReplicas"] == 6
    budget = shared.one("PodDisruptionBudget", "-bot")["spec"]
    assert budget == {**budget, "minAvailable": 1} and "maxUnavailable" not in budget
    assert helm.template(sets=["bot.replicas=3", "database.passToApp=true", "secrets.existingSecret=s"])


@pytest.mark.parametrize(
    ("sets", "where"),
    [
        (["bot.webhook.host=bot.example.com"], "bot.webhook.host"),
        (["bot.webhook.host=p2p.EXAMPLE.org"], "bot.webhook.host"),
        (["bot.webhook.host=<your bot host>"], "bot.webhook.host"),
        (["bot.webhook.host=bot.invalid"], "bot.webhook.host"),
        (["image.registry=<registry>.cr.cloud.ru"], "image.registry"),
        (["kafka.bootstrapServers=broker-1.example.net:9094\\,broker-2.example.net:9094"], "kafka.bootstrapServers"),
        (["s3.publicEndpointUrl=https://files.example.com"], "s3.publicEndpointUrl"),
        (["s3.endpointUrl=https://s3.example"], "s3.endpointUrl"),
    ],
)
def test_placeholders_are_refused_at_render_time(helm: Helm, sets: list[str], where: str):
    error = helm.refusal(sets=sets)
    assert f"{where} is " in error and "a placeholder" in error


def test_an_empty_webhook_host_is_refused(helm: Helm):
    assert "bot.webhook.host is empty" in helm.refusal(sets=["bot.webhook.host="])


def test_real_names_that_look_alike_pass(helm: Helm):
    rendered = helm.template(sets=["bot.webhook.host=bot.example.ru", "image.registry=reg.myexample.com/team"])
    assert rendered.one("Ingress", "-bot")["spec"]["rules"][0]["host"] == "bot.example.ru"


def test_the_documented_cloudru_install_is_refused_until_its_placeholders_are_replaced(helm: Helm):
    """The command at the top of values-cloudru.yaml, as written, and the file alone: both refused
    (before, they rendered bot.example.com without complaint)."""
    command = ["template", RELEASE, str(CHART), "-f", str(CHART / "values-cloudru.yaml")]
    alone = helm.run(*command)
    assert alone.returncode != 0 and "a placeholder" in alone.stderr and not alone.stdout.strip()
    as_written = helm.run(
        *command,
        "--set",
        "image.registry=<registry>.cr.cloud.ru",
        "--set",
        "image.tag=<version>",
        "--set",
        "kafka.bootstrapServers=<broker>:9094",
        "--set",
        "bot.webhook.host=<your bot host>",
    )
    assert as_written.returncode != 0 and "a placeholder" in as_written.stderr


def test_the_k3s_recipe_lets_traefik_reach_the_bot(helm: Helm):
    """k3s ships Traefik in kube-system: the recipe's --set-json points the bot's ingress rule at
    it instead of ingress-nginx's namespace (docs/deploy-kubernetes.md, section 9)."""
    doc = (CHART.parents[2] / "docs" / "deploy-kubernetes.md").read_text()
    ingress_from = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
        }
    ]
    flag = f"networkPolicy.ingressFrom={json.dumps(ingress_from, separators=(',', ':'))}"
    assert f"--set-json '{flag}'" in doc  # the recipe says exactly this
    done = helm.run(
        "template",
        RELEASE,
        str(CHART),
        "--set",
        "bot.webhook.host=p2p.acme-lab.ru",
        "--set",
        "bot.ingress.className=traefik",
        "--set-json",
        flag,
    )
    assert done.returncode == 0, done.stderr
    import yaml

    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    [policy] = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-bot")]
    webhook_rule = next(
        r
        for r in policy["spec"]["ingress"]
        if r["ports"] == [{"protocol": "TCP", "port": "http"}]
        and "ingress-nginx" not in json.dumps(r)
        and "monitoring" not in json.dumps(r)
    )
    assert webhook_rule["from"] == ingress_from
    assert "ingress-nginx" not in json.dumps(policy)


def test_cpu_workers_make_only_the_fast_profile(helm: Helm):
    """The CPU worker's rendered settings, read by the app's own Settings and policy factory: every
    job fast (512 px), quiet queue or not, asked for or not, so the batch of MAX_BATCH fits
    longestBatchSeconds and the grace period the chart derives from it."""
    from config.factories import profiles, quality_policy
    from config.settings import Settings
    from domain.models import Quality
    from tests.helm.conftest import container_env

    rendered = helm.template()
    worker = rendered.one("Deployment", "-worker-cpu")["spec"]["template"]["spec"]["containers"][0]
    env = {k: e["value"] for k, e in container_env(worker).items() if "value" in e}
    assert env["QUALITY_CAP"] == "fast" and "DEFAULT_QUALITY" not in env
    known = {name.upper() for name in Settings.model_fields}
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items() if k in known and k != "GENERATOR"})
    policy = quality_policy(settings, profiles(settings))
    made = {policy.choose(q, backlog)[0] for q in Quality for backlog in (0, 1, 50)}
    assert {p.name for p in made} == {"fast"} and max(p.max_side for p in made) == 512
    values = rendered.values["cpuWorker"]
    assert (
        int(env["MAX_BATCH"]) == values["maxBatch"] and float(env["SHUTDOWN_GRACE_S"]) >= values["longestBatchSeconds"]
    )
