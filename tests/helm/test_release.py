"""The chart's part of the release (docs/release.md): images by digest, a digest that wins over
the tag and is refused when malformed, and the optional Kyverno policy that admits only our signed
images. Rendered by the real helm (tests/helm/conftest.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.helm.conftest import CHART, Helm
from tests.helm.test_render import crd_validator
from tests.test_release_script import make_repo, release_with_stand_ins

pytestmark = pytest.mark.timeout(1800)

REGISTRY = "acme.cr.cloud.ru/prompt2pic"
DIGESTS = {key: "sha256:" + hashlib.sha256(key.encode()).hexdigest() for key in ("bot", "cpuWorker", "gpuWorker")}
REPOSITORIES = {"bot": "prompt2pic-bot", "cpuWorker": "prompt2pic-worker-cpu", "gpuWorker": "prompt2pic-worker-cuda"}
# Text shaped like cosign.pub: the chart copies it into the policy as it is (Kyverno parses it).
PUBLIC_KEY = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEq1P5yJ9wT3mJ0bQz8xYyH3Yc1m6bJ7m8kQm4xN2sR3n5rGm0Zq7yL1eW\n"
    "n9d7a3T0s0r8f6u2v4h1c2k5p9x3wA==\n"
    "-----END PUBLIC KEY-----"
)


def images_by_component(helm: Helm, sets: list[str], files: tuple[str, ...] = ()) -> dict[str, str]:
    """component -> image of every container, with the GPU worker and the CPU worker on."""
    rendered = helm.template(["values-gpu.yaml", *files], ["cpuWorker.enabled=true", *sets])
    return {
        workload["metadata"]["labels"].get("app.kubernetes.io/component", workload["metadata"]["name"]): c["image"]
        for workload, c in rendered.containers()
    }


def test_digests_win_over_the_tags(helm: Helm) -> None:
    sets = [f"image.registry={REGISTRY}", "image.tag=9.9.9"]
    sets += [f"{key}.image.digest={digest}" for key, digest in DIGESTS.items()]
    sets += ["bot.image.tag=1.2.3"]  # a component's own tag loses to its digest too
    images = set(images_by_component(helm, sets).values())
    assert images == {f"{REGISTRY}/{REPOSITORIES[key]}@{digest}" for key, digest in DIGESTS.items()}


def test_without_a_digest_the_tag_is_used(helm: Helm) -> None:
    images = images_by_component(
        helm, [f"image.registry={REGISTRY}", "image.tag=9.9.9", f"bot.image.digest={DIGESTS['bot']}"]
    )
    assert f"{REGISTRY}/prompt2pic-bot@{DIGESTS['bot']}" in images.values()
    assert f"{REGISTRY}/prompt2pic-worker-cpu:9.9.9" in images.values()
    assert f"{REGISTRY}/prompt2pic-worker-cuda:9.9.9" in images.values()


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:abc",  # too short
        "sha256:" + "A" * 64,  # upper case
        "sha512:" + "a" * 64,  # another algorithm
        "a" * 64,  # no algorithm
        "sha256:" + "a" * 64 + "0",  # too long
        "@sha256:" + "a" * 64,  # the separator belongs to the chart
    ],
)
def test_a_malformed_digest_is_refused(helm: Helm, digest: str) -> None:
    error = helm.refusal(sets=[f"cpuWorker.image.digest={digest}"])
    assert "the image digest of prompt2pic-worker-cpu must be sha256: and 64 lowercase hex digits" in error


def policy_sets(*extra: str) -> list[str]:
    return [f"image.registry={REGISTRY}", "imageVerification.enabled=true", *extra]


def test_the_kyverno_policy_is_off_by_default_and_needs_the_api_or_force(helm: Helm) -> None:
    assert not helm.template().kinds("ClusterPolicy")
    # Switched on, but the cluster (helm template: none) does not serve kyverno.io/v1: not rendered.
    assert not helm.template(sets=policy_sets(f"imageVerification.publicKey={PUBLIC_KEY}")).kinds("ClusterPolicy")


def test_the_kyverno_policy_renders_with_the_key_and_our_three_images(helm: Helm) -> None:
    done = helm.run(
        "template", "p2p", str(CHART),
        "--namespace", "bots", "--api-versions", "kyverno.io/v1/ClusterPolicy",
        "--set", "bot.webhook.host=p2p-bot.acme-lab.ru",
        *[arg for item in policy_sets() for arg in ("--set", item)],
        "--set-string", f"imageVerification.publicKey={PUBLIC_KEY}",
        "--show-only", "templates/kyverno-policy.yaml",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (policy,) = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert (policy["apiVersion"], policy["kind"]) == ("kyverno.io/v1", "ClusterPolicy")
    assert policy["spec"]["validationFailureAction"] == "Enforce"
    (rule,) = policy["spec"]["rules"]
    assert rule["match"]["any"][0]["resources"] == {"kinds": ["Pod"], "namespaces": ["bots"]}
    (verify,) = rule["verifyImages"]
    assert verify["imageReferences"] == [f"{REGISTRY}/{repo}*" for repo in REPOSITORIES.values()]
    assert verify["required"] is True and verify["verifyDigest"] is True and verify["mutateDigest"] is True
    (attestor,) = verify["attestors"]
    assert attestor["count"] == 1
    assert attestor["entries"] == [{"keys": {"publicKeys": PUBLIC_KEY}}]


def test_the_kyverno_policy_forced_with_a_keyless_identity(helm: Helm) -> None:
    subject = "https://github.com/acme/prompt2pic/.github/workflows/release.yml@refs/tags/*"
    rendered = helm.template(
        sets=policy_sets(
            "imageVerification.force=true",
            "imageVerification.keyless.issuer=https://token.actions.githubusercontent.com",
            f"imageVerification.keyless.subject={subject}",
        )
    )
    (policy,) = rendered.kinds("ClusterPolicy")
    (entry,) = policy["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"]
    assert entry["keyless"]["issuer"] == "https://token.actions.githubusercontent.com"
    assert entry["keyless"]["subject"] == subject


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["imageVerification.enabled=true", "imageVerification.force=true", "imageVerification.publicKey=x"],
            "imageVerification needs image.registry",
        ),
        (policy_sets("imageVerification.force=true"), "imageVerification needs publicKey (cosign.pub) or keyless"),
        (
            policy_sets(
                "imageVerification.force=true", "imageVerification.publicKey=x", "imageVerification.failureAction=Warn"
            ),
            "must be Enforce or Audit",
        ),
    ],
)
def test_the_kyverno_policy_refuses_an_incomplete_setup(helm: Helm, sets: list[str], message: str) -> None:
    assert message in helm.refusal(sets=sets)


def test_a_chart_rendered_with_the_release_values_runs_exactly_the_pushed_digests(helm: Helm, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    done, pushed = release_with_stand_ins(repo, tmp_path / "cosign.key")
    assert done.returncode == 0, done.stderr
    values = repo.path / "dist" / "release" / "release-values.yaml"
    images = images_by_component(helm, ["cpuWorker.enabled=true"], files=(str(values),))
    assert sorted(images.values()) == sorted(
        f"acme.cr.cloud.ru/p2p/prompt2pic-{target}@{digest}" for target, digest in pushed.items()
    )


@pytest.mark.parametrize("identity", ["key", "key-without-tlog", "keyless"])
def test_the_kyverno_policy_follows_kyvernos_crd_schema(helm: Helm, identity: str) -> None:
    """The rendered ClusterPolicy against the openAPIV3Schema of Kyverno 1.19.1's CRD (vendored in
    tests/schemas/kyverno), strict as the API server is: a misspelt or misplaced field fails. (The
    Kyverno CLI itself does not build from the Go module proxy: docs/release.md, section 7.)"""
    sets = {
        "key": [f"imageVerification.publicKey={PUBLIC_KEY}"],
        "key-without-tlog": [f"imageVerification.publicKey={PUBLIC_KEY}", "imageVerification.ignoreTlog=true"],
        "keyless": [
            "imageVerification.keyless.issuer=https://token.actions.githubusercontent.com",
            "imageVerification.keyless.subject=https://github.com/acme/prompt2pic/.github/workflows/release.yml@refs/tags/*",
        ],
    }[identity]
    (policy,) = helm.template(sets=policy_sets("imageVerification.force=true", *sets)).kinds("ClusterPolicy")
    crd_validator("kyverno.io/v1", "ClusterPolicy").validate(policy)


def test_the_crd_schema_catches_a_broken_policy(helm: Helm) -> None:
    """The check above can fail: a misspelt field and a wrong type are refused."""
    (policy,) = helm.template(
        sets=policy_sets("imageVerification.force=true", f"imageVerification.publicKey={PUBLIC_KEY}")
    ).kinds("ClusterPolicy")
    verify = policy["spec"]["rules"][0]["verifyImages"][0]
    verify["attestor"] = verify.pop("attestors")
    with pytest.raises(jsonschema.ValidationError, match="'attestor' was unexpected"):
        crd_validator("kyverno.io/v1", "ClusterPolicy").validate(policy)
    verify["attestors"] = verify.pop("attestor")
    verify["required"] = "yes"
    with pytest.raises(jsonschema.ValidationError, match="'yes' is not of type 'boolean'"):
        crd_validator("kyverno.io/v1", "ClusterPolicy").validate(policy)
