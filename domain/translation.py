"""Prompts in the words the model understands: translation before the English-only text encoders.

Würstchen reads prompts with two CLIP text encoders trained on English captions. Before a batch is
generated, ``UnderstandPrompts`` gives every job's prompt and negative prompt the form the model
reads:

- the language is told from the script, per text (``detect_language``): Cyrillic is Russian, or
  Ukrainian, Belarusian or Kazakh by their own letters (the bot's locale mapping treats those as
  Russian speakers too, and they all go to the Russian model); Latin script is left as written;
- in mixed text only the Cyrillic stretches are translated (``split_for_translation``): Latin
  words (names, "Van Gogh", "4k"), numbers around them and quoted words («Привет», "Hi") are kept
  as written, in place;
- all the stretches of a batch that are not in the cache go to the translator in one call;
- a translator that fails never fails a job: the original text is used and the result says so;
- the words past the text encoder's token limit (CLIP: 77 tokens) are found by the generator that
  owns the tokenizer (the ``PromptReader`` port) and reported with the result.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from domain.models import Job, TranslationStatus, Understood
from domain.ports import Metrics, PromptReader, PromptTranslator
from domain.telemetry import NoMetrics

log = logging.getLogger(__name__)

_CYRILLIC = re.compile(r"[\u0400-\u052f\u1c80-\u1c8f\u2de0-\u2dff\ua640-\ua69f]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]")
_KAZAKH = set("әғқңөұүһӘҒҚҢӨҰҮҺ")
_BELARUSIAN = set("ўЎ")
_UKRAINIAN = set("їєґЇЄҐ")
_RUSSIAN_NOT_UKRAINIAN = set("ыэъЫЭЪ")

# A quoted stretch is kept as written (a sign's text, a title); then words: letters and digits,
# joined by inner hyphens or apostrophes ("Жан-Поль", "d'Orsay").
_TOKEN = re.compile(
    r'(?P<quoted>"[^"\n]*"|«[^»\n]*»|„[^“”\n]*[“”]|“[^”\n]*”)'
    r"|(?P<word>[^\W_]+(?:[-'’][^\W_]+)*)"
)
_SENTENCE_END = (".", "!", "?", "…")


def detect_language(text: str) -> str:
    """The language of ``text`` as far as its script tells: ``ru``, ``uk``, ``be`` or ``kk`` for
    Cyrillic, ``en`` for Latin script (left as written), ``other`` for other letters, ``none``
    for no letters at all."""
    if _CYRILLIC.search(text):
        letters = set(text)
        if letters & _KAZAKH:
            return "kk"
        if letters & _BELARUSIAN:
            return "be"
        if letters & _UKRAINIAN:
            return "uk"
        if ("і" in letters or "І" in letters) and not letters & _RUSSIAN_NOT_UKRAINIAN:
            return "uk"
        return "ru"
    if _LATIN.search(text):
        return "en"
    if any(c.isalpha() for c in text):
        return "other"
    return "none"


@dataclass(frozen=True)
class Piece:
    text: str
    translate: bool  # a Cyrillic stretch for the translator; otherwise kept as written


def split_for_translation(text: str) -> list[Piece]:
    """``text`` cut into stretches to translate and stretches to keep, which join back into it.

    A stretch to translate runs from a Cyrillic word to the last Cyrillic word after it, over
    spaces, punctuation and numbers, and stops before a Latin word or a quote. The rest is kept."""
    spans: list[list[int]] = []  # [start, end] of each stretch to translate
    open_run = False
    for match in _TOKEN.finditer(text):
        word = match.group("word")
        if word is not None and _CYRILLIC.search(word):
            if open_run:
                spans[-1][1] = match.end()
            else:
                spans.append([match.start(), match.end()])
                open_run = True
        elif word is not None and not any(c.isalpha() for c in word):
            continue  # a number: part of the stretch around it, if any
        else:  # a Latin (or other) word, or a quote: the stretch stops
            open_run = False
    pieces: list[Piece] = []
    at = 0
    for start, end in spans:
        if start > at:
            pieces.append(Piece(text[at:start], False))
        pieces.append(Piece(text[start:end], True))
        at = end
    if at < len(text):
        pieces.append(Piece(text[at:], False))
    return pieces


def fit_translation(source: str, translated: str) -> str:
    """The model's English for ``source``, fitted back in place: no period the source did not
    have, lower case first when the source began in lower case; the source itself when the
    model gave nothing."""
    out = " ".join(translated.split())
    if not out:
        return source
    if out.endswith(".") and not source.rstrip().endswith(_SENTENCE_END):
        out = out[:-1].rstrip() or out
    if source[:1].islower() and out[:1].isupper() and not out[1:2].isupper():
        out = out[0].lower() + out[1:]
    return out


def assemble(pieces: Sequence[Piece], translations: dict[str, str]) -> str:
    return "".join(fit_translation(p.text, translations[p.text]) if p.translate else p.text for p in pieces)


@dataclass
class UnderstandPrompts:
    """Turns a batch's jobs into the text the model reads (see the module docstring)."""

    translator: PromptTranslator | None = None
    reader: PromptReader | None = None
    metrics: Metrics = field(default_factory=NoMetrics)
    cache_size: int = 4096

    def __post_init__(self) -> None:
        self._cache: OrderedDict[str, str] = OrderedDict()

    @property
    def translating(self) -> bool:
        return self.translator is not None and self.translator.translates

    def cached(self, text: str) -> str | None:
        return self._cache.get(text)

    async def __call__(self, jobs: Sequence[Job]) -> list[Understood]:
        # per job: (language, prompt pieces, negative pieces), the pieces None when not translating
        plans: list[tuple[str, list[Piece] | None, list[Piece] | None]] = []
        wanted: list[str] = []
        for job in jobs:
            language = detect_language(job.prompt)
            if not (self.translating and job.translate):
                plans.append((language, None, None))
                continue
            prompt_split = split_for_translation(job.prompt)
            negative_split = split_for_translation(job.negative_prompt)
            plans.append((language, prompt_split, negative_split))
            wanted += [p.text for p in (*prompt_split, *negative_split) if p.translate]
        translations = await self._translate(wanted)

        out = []
        for job, (language, prompt_pieces, negative_pieces) in zip(jobs, plans, strict=True):
            status = TranslationStatus.OFF if prompt_pieces is None else TranslationStatus.NONE
            prompt, negative, negative_translated = job.prompt, job.negative_prompt, False
            if prompt_pieces is not None and negative_pieces is not None:
                mine = [p.text for p in (*prompt_pieces, *negative_pieces) if p.translate]
                if mine and not all(text in translations for text in mine):
                    status = TranslationStatus.FAILED
                elif mine:
                    prompt = assemble(prompt_pieces, translations)
                    negative = assemble(negative_pieces, translations)
                    negative_translated = any(p.translate for p in negative_pieces)
                    status = TranslationStatus.TRANSLATED
            self.metrics.prompt_understood(language, status.value)
            out.append(
                Understood(
                    prompt=prompt,
                    negative_prompt=negative,
                    language=language,
                    translation=status,
                    negative_translated=negative_translated,
                )
            )
        return await self._find_cuts(out)

    async def _translate(self, wanted: list[str]) -> dict[str, str]:
        """Translations of ``wanted``: the cache first, the rest in one call; the texts of a
        failed call are left out."""
        translations: dict[str, str] = {}
        missing: list[str] = []
        for text in wanted:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                translations[text] = hit
            elif text not in translations and text not in missing:
                missing.append(text)
        if not missing:
            return translations
        assert self.translator is not None
        started = time.perf_counter()
        try:
            got = await self.translator.translate(missing)
            if len(got) != len(missing):
                raise ValueError(f"{len(got)} translations for {len(missing)} texts")
        except Exception as exc:  # never fails a job: the model reads the prompt as written
            log.warning(
                "translating %d text(s) failed (%s); the prompts go to the model as written",
                len(missing),
                type(exc).__name__,
            )
            self.metrics.translation_failed(type(exc).__name__)
            return translations
        self.metrics.translation_batch(len(missing), time.perf_counter() - started)
        for text, english in zip(missing, got, strict=True):
            translations[text] = english
            self._cache[text] = english
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return translations

    async def _find_cuts(self, understood: list[Understood]) -> list[Understood]:
        if self.reader is None or not understood:
            return understood
        try:
            cuts = await self.reader.unread([u.prompt for u in understood])
        except Exception as exc:  # a note in the caption, never a reason to fail
            log.warning("could not count the prompts' tokens (%s)", type(exc).__name__)
            return understood
        return [
            u.model_copy(update={"cut": cut, "token_limit": limit})
            for u, (cut, limit) in zip(understood, cuts, strict=True)
        ]
