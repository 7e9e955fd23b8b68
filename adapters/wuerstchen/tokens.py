"""What CLIP reads of a prompt: at most ``model_max_length`` tokens (77 with the start and end
tokens), and the pipelines cut the rest without a word to the user. ``unread_words`` finds the
words that are cut, so that the user can be told."""

from __future__ import annotations

from typing import Any


def unread_words(tokenizer: Any, text: str) -> str:
    """The words of ``text`` (as written) from the first one that does not fit whole in the
    tokenizer's limit; "" when everything fits.

    CLIP's tokenizer splits on white space before its byte-pair encoding, so a text's tokens are
    the concatenation of its words' tokens; a word cut in the middle counts as cut."""
    limit = int(tokenizer.model_max_length)
    room = limit - 2  # the start and end tokens
    ids = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    if len(ids) <= room:
        return ""
    used = 0
    words = text.split()
    for index, word in enumerate(words):
        used += len(tokenizer(word, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])
        if used > room:
            return " ".join(words[index:])
    return ""
