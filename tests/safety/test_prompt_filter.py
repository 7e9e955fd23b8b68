"""The prompt filter on the shipped word lists (config/wordlists), with the real Snowball stemmers:
Russian word forms, English, and the usual ways around a filter; and what a refusal says."""

from __future__ import annotations

import pytest

from adapters.embedded.queue import MemoryJobQueue
from adapters.snowball.stemmer import stemmers
from config.safety import SHIPPED_LISTS, prompt_filter
from config.settings import Settings
from domain.errors import PromptRefused
from domain.safety import build_prompt_filter, normalise, parse_word_list, spellings, variants
from domain.use_cases import SubmitPrompt


@pytest.fixture(scope="module")
def f():
    found = prompt_filter(Settings(_env_file=None))
    assert found is not None and found.rule_count > 50
    return found


RUSSIAN_FORMS = [
    # one entry, many forms: declension, gender, number, ё written as е
    "голая девушка",
    "голую девушку",
    "с голыми людьми",
    "голых моделей",
    "порно",
    "порнография",
    "порнографию",
    "порнографией",
    "порнушка",
    "эротика",
    "эротическую фотосессию",
    "эротичная сцена",
    "обнажённая модель",
    "обнаженную модель",
    "обнажёнными телами",
    "секс",
    "сексуальную девушку",
    "сексуальным",
    "раздетая женщина",
    "раздетую",
    "раздевается",
    "нагая",
    "нагую",
    "в стиле ню",
    "хентай",
    "хентая",
    "лоли в купальнике",
    "расчленённое тело",
    "кишки наружу",
]
RUSSIAN_CLEAN = [
    "Закат над океаном",
    "забил гол в ворота",
    "голова кошки",
    "голубое небо",
    "голос ветра",
    "секстант на столе моряка",
    "нюанс света",
    "наган на столе",
    "кишки в анатомическом атласе",
    "раздел книги",
    "новогодняя ёлка",
    "раздевалка спортзала",
    "выпотрошить рыбу к ужину",
]
ENGLISH_FORMS = [
    "a nude woman",
    "nudes",
    "nudity in art",
    "naked man",
    "nakedness",
    "porn",
    "porno",
    "pornography",
    "pornographic",
    "a sexy lady",
    "sexier",
    "sexual pose",
    "sexually",
    "erotic photo",
    "topless",
    "undressed",
    "undressing",
    "NSFW",
    "hentai girl",
    "loli",
    "a gory scene",
    "beheading",
    "dismembered",
    "18+ picture",
]
ENGLISH_CLEAN = [
    "a mountain landscape at dawn",
    "Essex countryside",
    "a man in Sussex",
    "a sextant",
    "a sexton in a church",
    "a chicken breast on a plate",
    "a great tit on a branch",
    "a nudge",
    "Gore-Tex jacket",
    "Lolita, the novel's cover",
    "an 18th century house",
    "rule 34 of the book",
    "a stripped wire",
    "Shota Imanaga pitching",
    "a gruesome Halloween pumpkin",
]
EVASIONS = [
    "s.e.x",
    "s e x",
    "s-e-x-y",
    "n_u_d_e",
    "p o r n",
    "sexxx",
    "pooorn",
    "NuDe",
    "pоrn",  # Cyrillic о
    "sеx",  # Cyrillic е
    "ѕех",  # all Cyrillic look-alikes
    "p0rn",
    "p0rn0",
    "nud3",
    "п0рн0",
    "пoрнo",  # Latin o inside a Russian word
    "𝐧𝐮𝐝𝐞",  # mathematical bold
    "ｎｕｄｅ",  # full width
    "nu\u200bde",  # zero-width space
    "nu\u00adde",  # soft hyphen
    "núdé",  # accents
    "ЭРОТИКА",
    "Порнография",
]


@pytest.mark.parametrize("prompt", RUSSIAN_FORMS)
def test_russian_word_forms_are_refused(f, prompt):
    assert f.check(prompt) is not None, prompt


@pytest.mark.parametrize("prompt", RUSSIAN_CLEAN)
def test_russian_words_that_only_look_alike_pass(f, prompt):
    assert f.check(prompt) is None, (prompt, f.check(prompt))


@pytest.mark.parametrize("prompt", ENGLISH_FORMS)
def test_english_word_forms_are_refused(f, prompt):
    assert f.check(prompt) is not None, prompt


@pytest.mark.parametrize("prompt", ENGLISH_CLEAN)
def test_english_innocent_words_pass(f, prompt):
    assert f.check(prompt) is None, (prompt, f.check(prompt))


@pytest.mark.parametrize("prompt", EVASIONS)
def test_evasions_are_seen_through(f, prompt):
    assert f.check(f"a picture of {prompt} please") is not None, prompt


def test_every_list_applies_whatever_the_language_of_the_prompt(f):
    assert f.check("beautiful порно art") is not None
    assert f.check("красивая nude модель") is not None


def test_a_refusal_names_the_category_never_the_word(f):
    with pytest.raises(PromptRefused) as caught:
        f.refuse("a very naked knight")
    assert caught.value.params == {"category": "sexual"}
    assert "naked" not in str(caught.value)
    assert f.refused["sexual"] >= 1
    with pytest.raises(PromptRefused) as caught:
        f.refuse("Лоли")
    assert caught.value.params == {"category": "minors"}


def test_normalising_and_readings():
    assert normalise("  Ёлка\u200b  ＡＢ  ") == "елка ab"
    assert normalise("йод") == "йод"  # й keeps its breve while accents go
    assert ["sex"] in spellings("s e x")
    assert ["sex"] in spellings("s.e.x")
    assert "sex" in variants("sеx") and "хуй" in variants("xyй")
    assert "porn" in variants("pooorn") and "boobs" in variants("booooobs")


def test_list_syntax_and_errors():
    stems = stemmers(["en", "ru"])
    wl = parse_word_list(
        "# c\nlanguage: ru\n[cats]\nкошка, =кот*, !котлета\nчёрный кот\nre:\\bмяу+\\b\n", "en", stems, "t.txt"
    )
    assert wl.language == "ru"
    assert [r.category for r in wl.rules] == ["cats"] * 4
    found = build_prompt_filter([("[cats]\nкошка\nчёрный кот\n!котлета\nкот*\nre:\\bмяу+\\b", "ru", "t.txt")], stems)
    assert found.check("три кошки") is not None  # a form of кошка
    assert found.check("котята") is not None  # prefix
    assert found.check("котлета") is None  # the exception wins
    assert found.check("черный кот") is not None and found.check("кот черный") is not None  # кот* alone
    assert found.check("мяууу") is not None
    assert found.check("собака") is None
    match = found.check("кошками")
    assert match is not None and match.source == "t.txt:2" and match.category == "cats"
    with pytest.raises(ValueError, match=r"t\.txt:1"):
        parse_word_list("re:(unclosed", "en", stems, "t.txt")


def test_operator_lists_from_a_setting(tmp_path):
    (tmp_path / "en.txt").write_text("[brands]\nacme*\n", encoding="utf-8")
    (tmp_path / "ru.extra.txt").write_text("[пример]\nрыба\n", encoding="utf-8")
    lists = f"{tmp_path / 'en.txt'},{tmp_path / 'ru.extra.txt'}"
    found = prompt_filter(Settings(_env_file=None, safety_word_lists=lists))
    assert found is not None
    assert found.check("an ACME rocket") is not None
    assert found.check("много рыбы") is not None  # Russian stems for a ru.* file
    assert found.check("a nude") is None  # the shipped lists are replaced, not added to
    assert prompt_filter(Settings(_env_file=None, safety_prompt_filter=False)) is None
    assert len(SHIPPED_LISTS) == 2


def test_a_long_prompt_is_checked_quickly(f):
    import time

    prompt = " ".join(f"word{i} landscape river{i}" for i in range(120))[:1000]
    started = time.perf_counter()
    assert f.check(prompt) is None
    assert time.perf_counter() - started < 0.5  # a generous bound on a shared 2-core machine


def test_submit_refuses_before_queuing_and_leaves_the_negative_prompt_alone(f):
    queue = MemoryJobQueue()
    submit = SubmitPrompt(queue, prompt_filter=f)
    with pytest.raises(PromptRefused):
        submit.prepare(user_id=1, chat_id=1, prompt="голую девушку")
    job = submit.prepare(user_id=1, chat_id=1, prompt="a portrait", negative_prompt="nude, nsfw")
    assert job.negative_prompt == "nude, nsfw"  # asking to leave it out is fine
