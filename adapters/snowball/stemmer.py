"""Word stems for the prompt filter, from the Snowball stemmers (``snowballstemmer``, pure
Python): Russian and English, and any other language Snowball has, by ISO 639-1 code."""

from __future__ import annotations

from collections.abc import Iterable

import snowballstemmer

from domain.safety import Stemmer

# ISO 639-1 codes of the languages Snowball stems, for the names snowballstemmer wants.
# fmt: off
NAMES = {
    "ar": "arabic", "ca": "catalan", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "eu": "basque", "fi": "finnish", "fr": "french", "ga": "irish",
    "hi": "hindi", "hu": "hungarian", "hy": "armenian", "id": "indonesian", "it": "italian",
    "lt": "lithuanian", "ne": "nepali", "nl": "dutch", "no": "norwegian", "pt": "portuguese",
    "ro": "romanian", "ru": "russian", "sr": "serbian", "sv": "swedish", "ta": "tamil",
    "tr": "turkish", "yi": "yiddish", "cs": "czech", "et": "estonian", "eo": "esperanto",
    "fa": "persian", "pl": "polish",
}
# fmt: on


def stemmer(language: str) -> Stemmer | None:
    """The stemmer of ``language`` (``en``, ``ru``...), or None when Snowball has none."""
    name = NAMES.get(language.lower())
    if name is None or name not in snowballstemmer.algorithms():
        return None
    return snowballstemmer.stemmer(name).stemWord


def stemmers(languages: Iterable[str]) -> dict[str, Stemmer]:
    out: dict[str, Stemmer] = {}
    for language in languages:
        stem = stemmer(language)
        if stem is not None:
            out[language.lower()] = stem
    return out
