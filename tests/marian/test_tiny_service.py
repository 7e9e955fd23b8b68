"""``GENERATOR=tiny`` through the composition root: the tiny Würstchen and the tiny MarianMT model,
both through their real loaders, and a Russian prompt that reaches the model translated."""

from __future__ import annotations

from adapters.embedded.translator import IdentityTranslator
from adapters.marian.translator import MarianTranslator
from adapters.wuerstchen.generator import WuerstchenGenerator
from adapters.wuerstchen.tiny import ensure_tiny_model
from config.bootstrap import Components
from config.settings import Settings
from domain.models import JobStatus, Quality, Result, TranslationStatus
from domain.translation import fit_translation
from tests.marian.test_translator import model_writes


def parts_for(tmp_path, tiny_marian, tmp_path_factory, **overrides) -> Components:
    folder = tmp_path_factory.getbasetemp() / "tiny-wuerstchen"
    ensure_tiny_model(folder)
    values = dict(
        _env_file=None,
        generator="tiny",
        tiny_model_dir=folder,
        tiny_translation_model_dir=tiny_marian,
        generator_device="cpu",
        generator_threads=1,
        metrics_enabled=False,
        quality_policy="fixed",
        default_quality="fast",
        memory_queue_file=tmp_path / "q.json",
        local_storage_dir=tmp_path / "img",
        batch_wait_s=0.0,
    )
    values.update(overrides)
    return Components(Settings(**values))


async def test_the_tiny_generator_comes_with_the_tiny_translator(tmp_path, tiny_marian, tmp_path_factory):
    parts = parts_for(tmp_path, tiny_marian, tmp_path_factory)
    translator, generator = parts.prompt_translator, parts.generator
    assert isinstance(translator, MarianTranslator) and isinstance(generator, WuerstchenGenerator)
    queue, storage = parts.queue, parts.storage
    for part in (queue, storage, translator, generator):
        await part.start()
    try:
        submit = parts.submit
        await submit(user_id=1, chat_id=1, prompt="Закат над океаном", quality=Quality.FAST, width=256, height=256)
        assert await parts.worker.run_once() == 1
        [result] = [d.message for d in await queue.receive_events(10, 1.0) if isinstance(d.message, Result)]
        assert result.status == JobStatus.DONE
        assert result.understood.translation == TranslationStatus.TRANSLATED
        [written] = model_writes(translator, ["Закат над океаном"])
        assert result.understood.prompt == fit_translation("Закат над океаном", written)
        assert result.understood.token_limit == 77  # the generator's CLIP tokenizer was asked
    finally:
        for part in (generator, translator, storage, queue):
            await part.stop()


def test_off_and_the_fake_generator_translate_nothing(tmp_path, tiny_marian, tmp_path_factory):
    off = parts_for(tmp_path, tiny_marian, tmp_path_factory, prompt_translation="off")
    assert isinstance(off.prompt_translator, IdentityTranslator)
    fake = parts_for(tmp_path, tiny_marian, tmp_path_factory, generator="fake")
    assert isinstance(fake.prompt_translator, IdentityTranslator)
    assert fake.understand.reader is None  # the fake generator has no tokenizer
