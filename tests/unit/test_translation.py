"""Prompt translation in the domain: languages from the script, mixed text, one call per batch, the
cache, a failing translator, the user's switch, and the use case inside the worker (in-memory
adapters, a strict dictionary translator; the real MarianMT model is in tests/marian)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from adapters.embedded.generator import FakeGenerator
from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.storage import LocalFolderStorage
from adapters.embedded.translator import IdentityTranslator
from adapters.otel.metrics import OtelMetrics
from domain.models import Job, JobStatus, Result, TranslationStatus
from domain.translation import (
    UnderstandPrompts,
    assemble,
    detect_language,
    fit_translation,
    split_for_translation,
)
from domain.use_cases import ProcessJobs, SubmitPrompt
from tests.unit.test_telemetry import points

DICTIONARY = {
    "Закат над океаном": "A sunset over the ocean.",
    "закат над океаном": "a sunset over the ocean",
    "Кот в стиле": "A cat in the style of",
    "масляная живопись": "oil painting",
    "люди, текст": "people, text",
    "размытие": "blur",
    "Маяк с надписью": "A lighthouse with the inscription",
    "Кіт на даху": "A cat on the roof",
    "кота на крыше": "cats on the roof",
}


class DictionaryTranslator:
    """As strict as the port: Cyrillic texts only (the domain must never send anything else),
    one English text per input, and it records every call."""

    name = "dictionary"
    translates = True

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def translate(self, texts: Sequence[str]) -> list[str]:
        self.calls.append(list(texts))
        if self.fail:
            raise RuntimeError("out of memory")
        for text in texts:
            if detect_language(text) not in ("ru", "uk", "be", "kk"):
                raise ValueError(f"not Cyrillic: {text!r}")
        return [DICTIONARY[t] for t in texts]


def job(prompt: str, negative: str = "", translate: bool = True, user: int = 1) -> Job:
    return Job(
        user_id=user,
        chat_id=user,
        prompt=prompt,
        negative_prompt=negative,
        width=256,
        height=256,
        seed=1,
        translate=translate,
    )


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Закат над океаном", "ru"),
        ("Ёжик в тумане, Sony A7", "ru"),
        ("Кіт на даху", "uk"),
        ("Захід сонця над морем", "uk"),
        ("Котка на даху ў тумане", "be"),
        ("Тау басындағы күн", "kk"),
        ("a sunset over the ocean", "en"),
        ("Café de Flore, Paris", "en"),
        ("日落 海洋", "other"),
        ("16:9 !!! 2024", "none"),
        ("4k, 16:9", "en"),
    ],
)
def test_the_language_comes_from_the_script(text, language):
    assert detect_language(text) == language


def test_mixed_text_keeps_latin_names_quotes_and_numbers_in_place():
    text = 'Кот в стиле Van Gogh, 4k, масляная живопись, «Привет» "Hello"'
    pieces = split_for_translation(text)
    assert "".join(p.text for p in pieces) == text
    assert [p.text for p in pieces if p.translate] == ["Кот в стиле", "масляная живопись"]
    kept = "".join(p.text for p in pieces if not p.translate)
    assert " Van Gogh, 4k, " in kept and "«Привет»" in kept and '"Hello"' in kept
    assert assemble(pieces, DICTIONARY) == 'A cat in the style of Van Gogh, 4k, oil painting, «Привет» "Hello"'


def test_numbers_inside_a_cyrillic_stretch_go_with_it():
    assert [p.text for p in split_for_translation("3 кота на крыше") if p.translate] == ["кота на крыше"]
    assert [p.text for p in split_for_translation("кот 3 кота на крыше") if p.translate] == ["кот 3 кота на крыше"]
    assert [p.text for p in split_for_translation("a sunset, 4k") if p.translate] == []


def test_fitting_a_translation_back_in_place():
    assert fit_translation("закат над океаном", "A sunset over the ocean.") == "a sunset over the ocean"
    assert fit_translation("Закат над океаном!", "A sunset over the ocean!") == "A sunset over the ocean!"
    assert fit_translation("кот", "NASA cat") == "NASA cat"  # an acronym keeps its capitals
    assert fit_translation("кот", "  ") == "кот"  # nothing back: the source stays


async def test_a_mixed_batch_goes_to_the_translator_in_one_call_and_english_is_never_sent():
    translator = DictionaryTranslator()
    understand = UnderstandPrompts(translator)
    jobs = [
        job("Закат над океаном", negative="люди, текст"),
        job("a red fox in the snow", negative="blur"),
        job("Кот в стиле Van Gogh, масляная живопись", negative="размытие"),
        job("Закат над океаном", user=2),  # the same text again: sent once
    ]
    seen = await understand(jobs)
    assert len(translator.calls) == 1
    assert sorted(translator.calls[0]) == sorted(
        ["Закат над океаном", "люди, текст", "Кот в стиле", "масляная живопись", "размытие"]
    )
    assert seen[0].prompt == "A sunset over the ocean" and seen[0].negative_prompt == "people, text"
    assert seen[0].translation == TranslationStatus.TRANSLATED and seen[0].negative_translated
    assert seen[0].language == "ru"
    assert seen[1].prompt == "a red fox in the snow" and seen[1].negative_prompt == "blur"
    assert seen[1].translation == TranslationStatus.NONE and seen[1].language == "en"
    assert seen[2].prompt == "A cat in the style of Van Gogh, oil painting"
    assert seen[3].prompt == seen[0].prompt


async def test_translations_are_cached_by_text():
    translator = DictionaryTranslator()
    understand = UnderstandPrompts(translator, cache_size=2)
    await understand([job("Закат над океаном")])
    again = await understand([job("Закат над океаном"), job("Кіт на даху")])
    assert translator.calls == [["Закат над океаном"], ["Кіт на даху"]]
    assert again[0].prompt == "A sunset over the ocean" and again[1].language == "uk"
    await understand([job("3 кота на крыше")])  # the cache holds 2: the oldest goes
    await understand([job("Закат над океаном")])
    assert translator.calls[-1] == ["Закат над океаном"]


async def test_a_failing_translator_leaves_the_prompt_as_written_and_says_so():
    translator = DictionaryTranslator(fail=True)
    seen = await UnderstandPrompts(translator)([job("Закат над океаном", negative="размытие"), job("a fox")])
    assert seen[0].prompt == "Закат над океаном" and seen[0].negative_prompt == "размытие"
    assert seen[0].translation == TranslationStatus.FAILED
    assert seen[1].translation == TranslationStatus.NONE  # nothing to translate: nothing failed


async def test_the_users_switch_and_the_identity_adapter_send_nothing():
    translator = DictionaryTranslator()
    seen = await UnderstandPrompts(translator)([job("Закат над океаном", translate=False)])
    assert translator.calls == [] and seen[0].prompt == "Закат над океаном"
    assert seen[0].translation == TranslationStatus.OFF
    seen = await UnderstandPrompts(IdentityTranslator())([job("Закат над океаном")])
    assert seen[0].prompt == "Закат над океаном" and seen[0].translation == TranslationStatus.OFF


class RecordingGenerator(FakeGenerator):
    def __init__(self) -> None:
        super().__init__()
        self.requests = []

    async def generate(self, requests, progress=None):
        self.requests += list(requests)
        return await super().generate(requests, progress)


async def results_of(queue: MemoryJobQueue) -> dict[str, Result]:
    out = {}
    for d in await queue.receive_events(1000, 0.1):
        if isinstance(d.message, Result):
            out[d.message.prompt] = d.message
        await d.ack()
    return out


@pytest.mark.parametrize("fail", [False, True])
async def test_the_worker_generates_from_the_translated_text(tmp_path, fail):
    queue, storage = MemoryJobQueue(), LocalFolderStorage(tmp_path)
    await queue.start()
    await storage.start()
    reader = InMemoryMetricReader()
    metrics = OtelMetrics(extra_readers=[reader], system_metrics=False)
    submit = SubmitPrompt(queue, default_width=256, default_height=256)
    for user, prompt in enumerate(["Закат над океаном", "a red fox"], 1):
        await submit(user_id=user, chat_id=user, prompt=prompt, negative_prompt="размытие")
    generator, translator = RecordingGenerator(), DictionaryTranslator(fail=fail)
    worker = ProcessJobs(
        queue,
        generator,
        storage,
        max_batch=4,
        batch_wait_s=0,
        prompts=UnderstandPrompts(translator, metrics=metrics),
        metrics=metrics,
    )
    assert await worker.run_once() == 2
    prompts = sorted((r.prompt, r.negative_prompt) for r in generator.requests)
    results = await results_of(queue)
    assert all(r.status == JobStatus.DONE for r in results.values())  # a failing translator fails no job
    assert len(translator.calls) == 1
    russian = results["Закат над океаном"].understood
    if fail:
        assert prompts == [("a red fox", "размытие"), ("Закат над океаном", "размытие")]
        assert russian.translation == TranslationStatus.FAILED
        assert results["a red fox"].understood.translation == TranslationStatus.FAILED  # its negative
    else:
        assert prompts == [("A sunset over the ocean", "blur"), ("a red fox", "blur")]
        assert russian.prompt == "A sunset over the ocean" and russian.translation == TranslationStatus.TRANSLATED
        assert results["a red fox"].understood.prompt == "a red fox"
    data = points(reader)
    outcomes = {(p.attributes["language"], p.attributes["outcome"]): p.value for p in data["p2p.prompts"]}
    expected = "failed" if fail else "translated"
    assert outcomes == {("ru", expected): 1, ("en", expected): 1}
    if fail:
        assert [p.attributes["kind"] for p in data["p2p.translation.errors"]] == ["RuntimeError"]
    else:
        assert data["p2p.translation.duration"][0].count == 1
    metrics.shutdown()
