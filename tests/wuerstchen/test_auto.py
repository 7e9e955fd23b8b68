"""``GENERATOR=auto`` through the composition root: the real Würstchen generator when the model is
in the Hugging Face cache (the tiny model saved there in the hub layout, as a download leaves it),
the placeholder with a warning that says what was tried when it is not, and the download's size
and progress in the log. This machine has no hub access: the hub is an address that refuses."""

from __future__ import annotations

import logging
import socket

from adapters.embedded.generator import FakeGenerator
from adapters.embedded.translator import IdentityTranslator
from adapters.huggingface.hub import download_progress
from adapters.wuerstchen.availability import check_real_model
from adapters.wuerstchen.generator import WuerstchenGenerator
from config.bootstrap import Components
from config.settings import Settings
from domain.models import GeneratorKind, JobStatus, Quality, Result
from tests.wuerstchen.test_loading import fake_hub_cache

PRIOR, DECODER = "p2p-test/tiny-wuerstchen-prior", "p2p-test/tiny-wuerstchen"


def auto_parts(tmp_path, **overrides) -> Components:
    values = dict(
        _env_file=None,
        generator="auto",
        wuerstchen_prior=PRIOR,
        wuerstchen_decoder=DECODER,
        prompt_translation="off",
        generator_device="cpu",
        generator_threads=1,
        metrics_enabled=False,
        quality_policy="fixed",
        default_quality="fast",
        memory_queue_file=tmp_path / "q.json",
        local_storage_dir=tmp_path / "img",
        batch_wait_s=0.0,
        safety_image_detector="none",
        generator_backend="torch",  # GENERATOR=auto is what is tested here; GENERATOR_BACKEND: test_openvino.py
    )
    values.update(overrides)
    return Components(Settings(**values), role="worker")


async def test_auto_picks_the_real_generator_when_the_model_is_in_the_hub_cache(
    tiny_model, tmp_path, monkeypatch, caplog
):
    cache = tmp_path / "hub"
    prior, decoder = tiny_model
    fake_hub_cache(cache, PRIOR, prior)
    fake_hub_cache(cache, DECODER, decoder)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what is cached is enough: the hub is not asked
    parts = auto_parts(tmp_path)
    with caplog.at_level(logging.INFO, logger="config.factories"):
        generator = parts.generator
    assert isinstance(generator, WuerstchenGenerator) and generator.kind == GeneratorKind.REAL
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    [chosen] = [r.getMessage() for r in caplog.records if "GENERATOR=auto" in r.getMessage()]
    assert "the real Würstchen model" in chosen and f"cached at {cache}" in chosen

    queue, storage = parts.queue, parts.storage
    for part in (queue, storage, generator):
        await part.start()
    try:
        await parts.submit(user_id=1, chat_id=1, prompt="a red fox", quality=Quality.FAST, width=256, height=256)
        assert await parts.worker.run_once() == 1
        [result] = [d.message for d in await queue.receive_events(10, 1.0) if isinstance(d.message, Result)]
        assert result.status == JobStatus.DONE and (result.width, result.height) == (256, 256)
        assert result.generator_kind == GeneratorKind.REAL  # what the bot, another process, is told
    finally:
        for part in (generator, storage, queue):
            await part.stop()


async def test_auto_without_the_model_and_offline_is_the_placeholder(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    parts = auto_parts(tmp_path)
    with caplog.at_level(logging.WARNING, logger="config.factories"):
        assert isinstance(parts.generator, FakeGenerator)
    assert isinstance(parts.prompt_translator, IdentityTranslator)  # the placeholder reads no prompt
    assert parts.worker.generator_kind == GeneratorKind.PLACEHOLDER
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"the prior {PRIOR!r} is not in the Hugging Face cache {tmp_path / 'hub'}" in warning
    assert "HF_HUB_OFFLINE is set" in warning and "PLACEHOLDERS" in warning


def refusing_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: connections are refused


async def test_auto_with_the_hub_out_of_reach_says_what_it_tried(tmp_path, monkeypatch, caplog):
    hub = refusing_address()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub)
    with caplog.at_level(logging.WARNING, logger="config.factories"):
        assert isinstance(auto_parts(tmp_path).generator, FakeGenerator)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"the hub {hub} did not answer for {PRIOR} within 3 s" in warning


def test_a_local_folder_that_is_not_there_is_not_the_model(tmp_path, tiny_model):
    prior, _ = tiny_model
    check = check_real_model(prior, tmp_path / "no-decoder", cache_dir=str(tmp_path / "hub"))
    assert not check.usable
    assert check.tried[-1] == f"the decoder folder {tmp_path / 'no-decoder'} does not exist"
    assert any(step.startswith("the prior is there: folder") for step in check.tried)


def test_a_download_shows_its_progress_in_the_log(tmp_path, caplog):
    folder = tmp_path / "models--acme--model"
    (folder / "blobs").mkdir(parents=True)
    with (
        caplog.at_level(logging.INFO, logger="adapters.huggingface.hub"),
        download_progress("acme/model", folder, total=4000, every_s=0.05),
    ):
        (folder / "blobs" / "abc.incomplete").write_bytes(b"x" * 2000)
        import time

        deadline = time.monotonic() + 5
        while not any("(50%)" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.02)
    lines = [r.getMessage() for r in caplog.records]
    assert "downloading acme/model: 0.0 GB of 0.0 GB (50%)" in lines
