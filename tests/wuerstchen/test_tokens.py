"""CLIP reads 77 tokens: the words past them are found with the model's own tokenizer and reported
with the result; diffusers' pipeline, which cuts them, names the same words."""

from __future__ import annotations

import logging

import pytest

from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.storage import LocalFolderStorage
from adapters.wuerstchen.tiny import build_tokenizer
from adapters.wuerstchen.tokens import unread_words
from domain.models import Quality, Result
from domain.translation import UnderstandPrompts
from domain.use_cases import ProcessJobs, SubmitPrompt

WORDS = ["a", "red", "cat", "on", "the", "blue", "painting", "of", "dog", "and"]  # one token each


def long_prompt(words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(words))


@pytest.mark.parametrize(
    "text",
    ["a red cat, on the blue painting!", "Van Gogh's «Starry Night», 1889", "ёжик в тумане — 4k", long_prompt(90)],
)
def test_a_texts_tokens_are_its_words_tokens(text):
    tokenizer = build_tokenizer()
    whole = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    by_word = [i for w in text.split() for i in tokenizer(w, add_special_tokens=False)["input_ids"]]
    assert whole == by_word  # what unread_words relies on


def test_the_words_past_the_limit():
    tokenizer = build_tokenizer()
    assert unread_words(tokenizer, long_prompt(75)) == ""  # 75 + start + end = 77: all read
    text = long_prompt(80)
    assert unread_words(tokenizer, text) == " ".join(text.split()[75:])
    # "painting," is two tokens; when only its first fits, the word counts as cut
    text = long_prompt(74) + " painting, of dog"
    assert unread_words(tokenizer, text) == "painting, of dog"


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def test_the_result_names_the_words_clip_did_not_read(tmp_path, tiny_generator):
    queue, storage = MemoryJobQueue(), LocalFolderStorage(tmp_path)
    await queue.start()
    await storage.start()
    submit = SubmitPrompt(queue, default_width=256, default_height=256)
    text = long_prompt(75) + " photo in the snow"
    await submit(user_id=1, chat_id=1, prompt=text, quality=Quality.FAST)
    await submit(user_id=2, chat_id=2, prompt="a red cat", quality=Quality.FAST)
    warnings = Warnings()
    diffusers_log = logging.getLogger("diffusers")  # diffusers does not propagate to the root
    diffusers_log.addHandler(warnings)
    try:
        worker = ProcessJobs(
            queue, tiny_generator, storage, batch_wait_s=0, prompts=UnderstandPrompts(reader=tiny_generator)
        )
        assert await worker.run_once() == 2
    finally:
        diffusers_log.removeHandler(warnings)
    results = {
        d.message.user_id: d.message for d in await queue.receive_events(100, 0.1) if isinstance(d.message, Result)
    }
    assert results[1].understood.cut == "photo in the snow"
    assert results[1].understood.token_limit == 77
    assert results[2].understood.cut == ""
    truncated = [m for m in warnings.messages if "truncated" in m]
    assert truncated and all("photo in the snow" in m for m in truncated)  # diffusers cut the same words
