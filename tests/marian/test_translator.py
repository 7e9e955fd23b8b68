"""The MarianMT adapter on the tiny random-weight model, through the real transformers classes.

Random weights write gibberish, so nothing here checks the English: what is checked is that the
text the generator gets is exactly what the loaded model writes for the prompt (computed by calling
that model directly), that English is never sent to it, that a batch goes in one call, and that
failures and the user's switch behave."""

from __future__ import annotations

import shutil
import threading

import pytest

from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.storage import LocalFolderStorage
from adapters.marian.translator import MarianTranslator, max_new_tokens
from domain.errors import ModelNotFound
from domain.models import JobStatus, Result, TranslationStatus
from domain.translation import UnderstandPrompts, assemble, split_for_translation
from domain.use_cases import ProcessJobs, SubmitPrompt
from tests.unit.test_translation import RecordingGenerator


def model_writes(translator: MarianTranslator, texts: list[str]) -> list[str]:
    """What the loaded model itself writes for ``texts`` (one batch), bypassing the adapter."""
    import torch

    tokenizer, model = translator.tokenizer, translator.model
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        ids = model.generate(**batch, max_new_tokens=max_new_tokens(batch["input_ids"].shape[1]), max_length=None)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def test_the_tiny_model_is_a_real_marian_model_in_the_hub_layout(tiny_marian):
    from transformers import MarianMTModel, MarianTokenizer

    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "source.spm",
        "target.spm",
        "vocab.json",
        "tokenizer_config.json",
    ):
        assert (tiny_marian / name).is_file(), name
    tokenizer = MarianTokenizer.from_pretrained(tiny_marian)
    model = MarianMTModel.from_pretrained(tiny_marian)
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer("Закат над океаном")["input_ids"][-1] == tokenizer.eos_token_id


async def test_it_returns_what_the_model_writes_in_one_call(translator):
    texts = ["Закат над океаном", "Горный пейзаж на рассвете", "кот"]
    before = translator.calls
    got = await translator.translate(texts)
    assert translator.calls == before + 1  # one model call for the batch
    assert got == model_writes(translator, texts)
    assert len(set(got)) == 3 and all(got)  # the output depends on the input
    assert all(text.isascii() for text in got)  # the tiny model writes with its English pieces
    assert await translator.translate([]) == []


async def test_the_model_runs_on_the_translators_thread(translator):
    threads = []
    generate = translator.model.generate

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return generate(*args, **kwargs)

    translator.model.generate = spy
    await translator.translate(["Закат над океаном"])
    assert threads and threads[0].startswith("marian") and threads[0] != threading.main_thread().name


def test_a_model_that_cannot_be_found_is_one_line(tmp_path, tiny_marian, monkeypatch):
    cases = []
    with pytest.raises(ModelNotFound) as missing:
        MarianTranslator(tmp_path / "nowhere").load()
    cases.append((missing.value, "does not exist"))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_marian, broken)
    (broken / "source.spm").unlink()
    with pytest.raises(ModelNotFound) as incomplete:
        MarianTranslator(broken).load()
    cases.append((incomplete.value, "lacks source.spm"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound) as offline:
        MarianTranslator("Helsinki-NLP/opus-mt-ru-en", cache_dir=tmp_path / "hf-cache").load()
    cases.append((offline.value, "not in the Hugging Face cache"))
    for error, says in cases:
        text = str(error)
        assert "\n" not in text and says in text, text
        assert "PROMPT_TRANSLATION_MODEL" in text and "PROMPT_TRANSLATION=off" in text


@pytest.fixture
async def worker_parts(tmp_path):
    queue, storage = MemoryJobQueue(), LocalFolderStorage(tmp_path / "img")
    await queue.start()
    await storage.start()
    return queue, storage, SubmitPrompt(queue, default_width=256, default_height=256)


async def results(queue) -> dict[str, Result]:
    out = {}
    for d in await queue.receive_events(1000, 0.1):
        if isinstance(d.message, Result):
            out[d.message.prompt] = d.message
        await d.ack()
    return out


async def test_the_generator_is_given_what_the_model_wrote(worker_parts, translator):
    queue, storage, submit = worker_parts
    sent: list[list[str]] = []
    translate = translator.translate

    async def spy(texts):
        sent.append(list(texts))
        return await translate(texts)

    translator.translate = spy
    prompts = [
        ("Закат над океаном", "люди, текст"),
        ("a red fox in the snow", ""),
        ("Кот в стиле Van Gogh, «Привет»", "blur"),
    ]
    for user, (prompt, negative) in enumerate(prompts, 1):
        await submit(user_id=user, chat_id=user, prompt=prompt, negative_prompt=negative)
    generator = RecordingGenerator()
    worker = ProcessJobs(queue, generator, storage, max_batch=4, batch_wait_s=0, prompts=UnderstandPrompts(translator))
    assert await worker.run_once() == 3

    assert len(sent) == 1  # the whole batch, prompts and negatives, in one call
    assert sorted(sent[0]) == sorted(["Закат над океаном", "люди, текст", "Кот в стиле"])
    written = dict(zip(sent[0], model_writes(translator, sent[0]), strict=True))
    expected = {
        (assemble(split_for_translation(p), written), assemble(split_for_translation(n), written)) for p, n in prompts
    }
    given = {(r.prompt, r.negative_prompt) for r in generator.requests}
    assert given == expected
    assert ("a red fox in the snow", "") in given  # English: unchanged
    mixed = next(p for p, _ in given if p.endswith("Van Gogh, «Привет»"))
    assert mixed != "Кот в стиле Van Gogh, «Привет»"  # translated around the kept name and quote

    done = await results(queue)
    assert all(r.status == JobStatus.DONE for r in done.values())
    russian = done["Закат над океаном"].understood
    assert russian.translation == TranslationStatus.TRANSLATED and russian.negative_translated
    assert (russian.prompt, russian.negative_prompt) in given
    assert done["a red fox in the snow"].understood.translation == TranslationStatus.NONE


async def test_the_setting_off_and_a_failing_model(worker_parts, translator):
    queue, storage, submit = worker_parts
    job = submit.prepare(user_id=1, chat_id=1, prompt="Закат над океаном").model_copy(update={"translate": False})
    await submit.publish(job)
    generator = RecordingGenerator()
    worker = ProcessJobs(queue, generator, storage, batch_wait_s=0, prompts=UnderstandPrompts(translator))
    calls = translator.calls
    await worker.run_once()
    assert generator.requests[-1].prompt == "Закат над океаном" and translator.calls == calls
    assert (await results(queue))["Закат над океаном"].understood.translation == TranslationStatus.OFF

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    translator.model.generate = broken
    await submit(user_id=2, chat_id=2, prompt="Горный пейзаж на рассвете")
    await worker.run_once()
    assert generator.requests[-1].prompt == "Горный пейзаж на рассвете"
    result = (await results(queue))["Горный пейзаж на рассвете"]
    assert result.status == JobStatus.DONE and result.understood.translation == TranslationStatus.FAILED
