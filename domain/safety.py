"""Content safety in the domain: the prompt filter (operator word and pattern lists per language)
and the values of the image check.

Word lists are plain text, one or more rules a line (comma-separated), ``#`` comments:

    [sexual]            the category of the rules below (shown in logs and metrics, never to users)
    nude                a word in all its forms: compared by its stem (Snowball, the list's language)
    porn*               any word that starts with it
    =гол                this exact word form only (for stems that collide with innocent words)
    !sextant*           never matches (an exception, checked before the rules)
    child porn          a phrase: consecutive words, each matched as above
    re:\\b18\\s*\\+        a regular expression on the normalised text (the whole line)

A list's language comes from its file name (``ru.txt``, ``ru.extra.txt``) or a ``language: xx``
line. Every list applies to every prompt, whatever the user's language (people mix them).

Before matching, a prompt is normalised the way people dodge filters: Unicode compatibility forms
(𝐬𝐞𝐱, ｓｅｘ), case, ё/е, accents, invisible characters, Latin/Cyrillic look-alikes ("sеx" with a
Cyrillic е, "xyй"), digits for letters ("p0rn"), separators inside a word ("s.e.x", "s-e-x",
"s e x") and stretched letters ("pooorn"). Stemming itself is an adapter (``Stemmer``), so the
domain stays free of any library.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

from domain.errors import PromptRefused

Stemmer = Callable[[str], str]
"""A word's stem in one language (lower-case in, lower-case out)."""


class ImageAction(StrEnum):
    """What happens to a picture the image check flags."""

    SPOILER = "spoiler"  # sent behind Telegram's spoiler blur
    REFUSE = "refuse"  # not stored, not sent; the user is told honestly
    OFF = "off"  # no image check at all


@dataclass(frozen=True)
class Detection:
    category: str
    score: float


@dataclass(frozen=True)
class ImageVerdict:
    """What the image check saw in one picture: ``flagged`` when any detection of a flagged
    category reached the threshold; ``detections`` lists everything it reported."""

    flagged: bool
    categories: tuple[str, ...] = ()
    detections: tuple[Detection, ...] = ()
    seconds: float = 0.0


CLEAN = ImageVerdict(flagged=False)

# --------------------------------------------------------------------------- normalising

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[a-z]")
# Latin letters, digits and symbols that pass for Cyrillic letters, and the other way round.
# fmt: off
_TO_CYRILLIC = str.maketrans({
    "a": "а", "b": "в", "c": "с", "e": "е", "h": "н", "k": "к", "m": "м", "o": "о", "p": "р",
    "t": "т", "x": "х", "y": "у", "u": "и", "n": "п", "r": "г",
    "0": "о", "3": "з", "4": "ч", "6": "б", "@": "а",
})
_TO_LATIN = str.maketrans({
    "а": "a", "в": "b", "с": "c", "е": "e", "н": "h", "к": "k", "м": "m", "о": "o", "р": "p",
    "т": "t", "х": "x", "у": "y", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "г": "r", "п": "n",
    "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s",
    "!": "i", "|": "l",
})
# fmt: on
_WORD_CHARS = r"[^\W_]|[@$!|]"  # letters and digits, and the symbols used as letters
_SEPARATORS = ".-_*+~/\\'’`·•,:;^=\"()[]{}<>#%&?"
_STRETCH = re.compile(r"(.)\1{2,}")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Compatibility forms, case, ё/е, accents and invisible characters folded; spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        category = unicodedata.category(ch)
        if category == "Cf":  # zero-width joiners, soft hyphens, direction marks
            continue
        if category == "Mn":
            if ch == "\u0306" and out and out[-1] in "иу":  # й, ў keep their breve
                out.append(ch)
            continue
        out.append(ch)
    return _SPACE.sub(" ", unicodedata.normalize("NFC", "".join(out))).strip()


def _is_wordish(token: str) -> bool:
    return any(ch.isalpha() for ch in token)


def words(text: str) -> list[str]:
    """The normalised text split into words at spaces and punctuation (symbols used as letters,
    like ``$`` and ``@``, stay inside words)."""
    return [t for t in re.findall(rf"(?:{_WORD_CHARS})+", text) if _is_wordish(t) or t.isdigit()]


def spellings(text: str) -> list[list[str]]:
    """The ways to read the (normalised) text as words: split at punctuation; with separators
    inside a word dropped ("s.e.x", "p-o-r-n"); and with runs of single letters joined
    ("s e x"). Each reading is a list of words."""
    split = words(text)
    squeezed = [
        w
        for w in ("".join(ch for ch in chunk if ch not in _SEPARATORS) for chunk in text.split(" "))
        if w and _is_wordish(w)
    ]
    joined: list[str] = []
    run: list[str] = []
    for w in [*split, ""]:
        if len(w) == 1:
            run.append(w)
            continue
        if len(run) >= 2:
            joined.append("".join(run))
        else:
            joined.extend(run)
        run = []
        if w:
            joined.append(w)
    return [split, *(reading for reading in (squeezed, joined) if reading != split)]


def variants(word: str) -> set[str]:
    """A word as written, with look-alikes folded into one script where that leaves it all one
    script ("sеx" with a Cyrillic е is "sex"; "xyй" is "хуй"; "p0rn" is "porn"), and stretched
    letters ("pooorn", "sexxx") shortened."""
    out = {word}
    latin = word.translate(_TO_LATIN)
    if latin != word and not _CYRILLIC.search(latin):
        out.add(latin)
    cyrillic = word.translate(_TO_CYRILLIC)
    leet_or_mixed = _CYRILLIC.search(word) or any(ch.isdigit() or ch == "@" for ch in word)
    if cyrillic != word and leet_or_mixed and not _LATIN.search(cyrillic):
        out.add(cyrillic)
    for w in list(out):  # noqa: PERF101 - a copy: the loop adds to the set
        short = _STRETCH.sub(r"\1", w)
        if short != w:
            out.add(short)
            out.add(_STRETCH.sub(r"\1\1", w))
    return out


# --------------------------------------------------------------------------- rules


class RuleKind(StrEnum):
    STEM = "stem"
    PREFIX = "prefix"
    EXACT = "exact"


@dataclass(frozen=True)
class Term:
    kind: RuleKind
    value: str  # the stem, prefix or exact form (normalised)
    language: str


@dataclass(frozen=True)
class Rule:
    category: str
    language: str
    terms: tuple[Term, ...] = ()  # one: a word; several: a phrase
    pattern: re.Pattern[str] | None = None
    source: str = ""  # "en.txt:12", for the operator's logs


@dataclass(frozen=True)
class WordList:
    language: str
    rules: tuple[Rule, ...]
    exceptions: tuple[Term, ...]


def _term(item: str, language: str, stem: Stemmer | None) -> Term:
    item = normalise(item)
    if item.startswith("="):
        return Term(RuleKind.EXACT, item[1:], language)
    if item.endswith("*"):
        return Term(RuleKind.PREFIX, item[:-1], language)
    if stem is None:
        return Term(RuleKind.EXACT, item, language)
    return Term(RuleKind.STEM, stem(item), language)


def parse_word_list(text: str, language: str, stemmers: Mapping[str, Stemmer], source: str = "list") -> WordList:
    """Parse a word list (see the module's doc). Raises ``ValueError`` with the line on a bad rule."""
    category = "default"
    rules: list[Rule] = []
    exceptions: list[Term] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{source}:{number}"
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("language:"):
            language = line.split(":", 1)[1].strip().lower()
            continue
        if line.startswith("[") and line.endswith("]"):
            category = line[1:-1].strip() or "default"
            continue
        stem = stemmers.get(language)
        if line.startswith("re:"):
            try:
                pattern = re.compile(line[3:].strip())
            except re.error as exc:
                raise ValueError(f"{where}: bad regular expression: {exc}") from None
            rules.append(Rule(category, language, pattern=pattern, source=where))
            continue
        for item in (part.strip() for part in line.split(",")):
            if not item:
                continue
            if item.startswith("!"):
                exceptions.append(_term(item[1:], language, stem))
                continue
            parts = item.split()
            terms = tuple(_term(part, language, stem) for part in parts)
            if any(not t.value for t in terms):
                raise ValueError(f"{where}: empty rule in {item!r}")
            rules.append(Rule(category, language, terms=terms, source=where))
    return WordList(language, tuple(rules), tuple(exceptions))


def _key(term: Term) -> tuple[str, str]:
    return ("=", term.value) if term.kind is RuleKind.EXACT else (term.language, term.value)


@dataclass(frozen=True)
class Match:
    category: str
    source: str  # where the rule is, for the operator; the matched word itself is not kept


@dataclass
class PromptFilter:
    """Checks prompts against operator word lists. ``check`` returns the first match or None;
    ``refuse`` raises ``PromptRefused``. Counts refusals by category since it was made."""

    lists: Sequence[WordList]
    stemmers: Mapping[str, Stemmer] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stem = lru_cache(maxsize=65536)(self._stem_uncached)
        self._languages = sorted({wl.language for wl in self.lists if wl.language in self.stemmers})
        # Single words are looked up by key, prefixes in one pass; phrases and patterns are few.
        self._words: dict[tuple[str, str], Rule] = {}
        self._prefixes: list[tuple[str, Rule]] = []
        self._phrases: list[Rule] = []
        self._patterns: list[tuple[re.Pattern[str], Rule]] = []
        for wl in self.lists:
            for rule in wl.rules:
                if rule.pattern is not None:
                    self._patterns.append((rule.pattern, rule))
                elif len(rule.terms) > 1:
                    self._phrases.append(rule)
                elif rule.terms[0].kind is RuleKind.PREFIX:
                    self._prefixes.append((rule.terms[0].value, rule))
                else:
                    self._words.setdefault(_key(rule.terms[0]), rule)
        self._prefix_tuple = tuple(p for p, _ in self._prefixes)
        exceptions = [t for wl in self.lists for t in wl.exceptions]
        self._except_keys = {_key(t) for t in exceptions if t.kind is not RuleKind.PREFIX}
        self._except_prefixes = tuple(t.value for t in exceptions if t.kind is RuleKind.PREFIX)

    @property
    def rule_count(self) -> int:
        return sum(len(wl.rules) for wl in self.lists)

    def _stem_uncached(self, language: str, word: str) -> str:
        stemmer = self.stemmers.get(language)
        return stemmer(word) if stemmer else word

    def _word(self, word: str) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
        """A word's forms and keys (its exact forms, its stem in every list's language); nothing
        for a word the exceptions cover."""
        forms = variants(word)
        keys = {("=", f) for f in forms}
        for language in self._languages:
            keys |= {(language, self._stem(language, f)) for f in forms}
        if keys & self._except_keys or (
            self._except_prefixes and any(f.startswith(self._except_prefixes) for f in forms)
        ):
            return frozenset(), frozenset()
        return frozenset(forms), frozenset(keys)

    @staticmethod
    def _hit(term: Term, forms: frozenset[str], keys: frozenset[tuple[str, str]]) -> bool:
        if term.kind is RuleKind.PREFIX:
            return any(f.startswith(term.value) for f in forms)
        return _key(term) in keys

    def _single(self, forms: frozenset[str], keys: frozenset[tuple[str, str]]) -> Rule | None:
        for key in keys:
            rule = self._words.get(key)
            if rule is not None:
                return rule
        if self._prefix_tuple:
            for form in forms:
                if form.startswith(self._prefix_tuple):
                    return next(r for p, r in self._prefixes if form.startswith(p))
        return None

    def check(self, prompt: str) -> Match | None:
        text = normalise(prompt)
        if not text:
            return None
        if self._patterns:
            texts = {text, text.translate(_TO_LATIN), text.translate(_TO_CYRILLIC)}
            for pattern, rule in self._patterns:
                if any(pattern.search(t) for t in texts):
                    return Match(rule.category, rule.source)
        memo: dict[str, tuple[frozenset[str], frozenset[tuple[str, str]]]] = {}
        for reading in spellings(text):
            seen = []
            for word in reading:
                if word not in memo:
                    memo[word] = self._word(word)
                    single = self._single(*memo[word])
                    if single is not None:
                        return Match(single.category, single.source)
                seen.append(memo[word])
            for rule in self._phrases:
                n = len(rule.terms)
                for i in range(len(seen) - n + 1):
                    if all(self._hit(t, *seen[i + k]) for k, t in enumerate(rule.terms)):
                        return Match(rule.category, rule.source)
        return None

    def refuse(self, prompt: str) -> None:
        """Raise ``PromptRefused`` (with the category only) when ``prompt`` matches."""
        match = self.check(prompt)
        if match is not None:
            self.refused[match.category] += 1
            raise PromptRefused(category=match.category)


def build_prompt_filter(texts: Iterable[tuple[str, str, str]], stemmers: Mapping[str, Stemmer]) -> PromptFilter:
    """A filter from ``(text, language, source)`` triples (the files' contents)."""
    lists = [parse_word_list(text, language, stemmers, source) for text, language, source in texts]
    return PromptFilter(lists, stemmers)


# --------------------------------------------------------------------------- counts for /stats


@dataclass
class SafetyTally:
    """What the bot saw of safety since it started: for the admins' /stats."""

    prompts_refused: Counter[str] = field(default_factory=Counter)  # by category, at the bot
    results: Counter[str] = field(default_factory=Counter)  # prompt_refused | image_refused | spoiler
    reports: int = 0
    remember: int = 10_000
    _reported: dict[str, None] = field(default_factory=dict)

    def reported(self, job_id: str) -> bool:
        """A user reported ``job_id``: True the first time (then it goes to the admins)."""
        if job_id in self._reported:
            return False
        self._reported[job_id] = None
        while len(self._reported) > self.remember:
            self._reported.pop(next(iter(self._reported)))
        self.reports += 1
        return True

    def saw_result(self, error_code: str | None, spoiler: bool) -> None:
        if error_code in ("prompt_refused", "image_refused"):
            self.results[error_code] += 1
        if spoiler:
            self.results["spoiler"] += 1
