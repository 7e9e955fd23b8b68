"""Building the content-safety parts from the settings: the prompt filter (word lists read from
the files ``SAFETY_WORD_LISTS`` names, or the lists shipped in ``config/wordlists/``) and the image
check (NudeNet on the worker, imported only there)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from domain.ports import ImageCheck
from domain.safety import PromptFilter, build_prompt_filter

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)

SHIPPED_LISTS = tuple(sorted((Path(__file__).parent / "wordlists").glob("*.txt")))


def list_language(path: Path) -> str:
    """``ru.txt`` and ``ru.extra.txt`` are Russian lists (a ``language:`` line may say otherwise)."""
    return path.name.split(".")[0].lower()


def word_list_paths(settings: Settings) -> list[Path]:
    paths = [Path(part.strip()) for part in settings.safety_word_lists.split(",") if part.strip()]
    return paths or list(SHIPPED_LISTS)


def prompt_filter(settings: Settings) -> PromptFilter | None:
    """The prompt filter, or None when ``SAFETY_PROMPT_FILTER`` is off. A list that cannot be
    read or parsed stops the start with the file and line: a filter silently missing a list is
    worse than none."""
    if not settings.safety_prompt_filter:
        return None
    from adapters.snowball.stemmer import stemmers

    paths = word_list_paths(settings)
    texts = [(p.read_text(encoding="utf-8"), list_language(p), p.name) for p in paths]
    stems = stemmers({language for _, language, _ in texts} | {"en", "ru"})
    found = build_prompt_filter(texts, stems)
    log.info("prompt filter: %d rule(s) from %s", found.rule_count, ", ".join(p.name for p in paths))
    return found


def image_check_kind(settings: Settings) -> str:
    """Which image check the settings ask for: ``nudenet`` (the worker extra), or ``none`` when
    ``SAFETY_IMAGE_ACTION=off`` or ``SAFETY_IMAGE_DETECTOR=none``. ``auto`` takes NudeNet when
    it is installed and says loudly when it is not."""
    if settings.safety_image_action == "off" or settings.safety_image_detector == "none":
        return "none"
    if settings.safety_image_detector == "auto":
        import importlib.util

        if importlib.util.find_spec("nudenet") is None or importlib.util.find_spec("onnxruntime") is None:
            log.warning(
                "SAFETY_IMAGE_DETECTOR=auto: NudeNet is not installed (the worker extra), so "
                "pictures are NOT checked; install prompt2pic[worker] or set SAFETY_IMAGE_DETECTOR=none"
            )
            return "none"
    return "nudenet"


def no_image_check() -> ImageCheck:
    from adapters.embedded.image_check import NoImageCheck

    return NoImageCheck()


def nudenet_check(settings: Settings) -> ImageCheck:
    from adapters.nudenet.detector import NudeNetCheck

    return NudeNetCheck(
        threshold=settings.safety_image_threshold,
        categories=[c.strip() for c in settings.safety_image_categories.split(",") if c.strip()],
        threads=settings.safety_image_threads,
    )


def image_check(settings: Settings) -> ImageCheck:
    """The image check the settings ask for (``image_check_kind``)."""
    return nudenet_check(settings) if image_check_kind(settings) == "nudenet" else no_image_check()
