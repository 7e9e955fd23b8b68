"""One chat's updates take turns (adapters/telegram/turns.py); other chats' do not wait."""

from __future__ import annotations

import asyncio

from adapters.telegram.turns import ChatTurns, held_turn


async def test_a_chats_turns_follow_the_order_they_were_taken_in_and_other_chats_do_not_wait():
    turns = ChatTurns()
    done: list[str] = []

    async def handle(chat: int, name: str, turn, pause: float) -> None:  # type: ignore[no-untyped-def]
        async with turn.held():
            await asyncio.sleep(pause)
            done.append(name)

    # taken synchronously in arrival order; the first of chat 1 is the slowest
    tasks = [
        asyncio.create_task(handle(1, "1a", turns.take(1), 0.05)),
        asyncio.create_task(handle(1, "1b", turns.take(1), 0.0)),
        asyncio.create_task(handle(2, "2a", turns.take(2), 0.0)),
        asyncio.create_task(handle(1, "1c", turns.take(1), 0.0)),
    ]
    await asyncio.gather(*tasks)
    assert done == ["2a", "1a", "1b", "1c"]
    assert len(turns) == 0  # a chat leaves once its last turn is over


async def test_a_handed_over_turn_lets_the_next_go_ahead_but_never_past_an_earlier_one():
    turns = ChatTurns()
    first, second, third = turns.take(7), turns.take(7), turns.take(7)
    order: list[str] = []
    release_first = asyncio.Event()

    async def one() -> None:
        async with first.held():
            await release_first.wait()
            order.append("first")

    async def two() -> None:
        async with second.held():
            assert held_turn() is second
            second.hand_over()  # e.g. its reply waits out flood control
            assert held_turn() is None
            await asyncio.sleep(0.05)
            order.append("second")

    async def three() -> None:
        async with third.held():
            order.append("third")

    tasks = [asyncio.create_task(f()) for f in (one, two, three)]
    await asyncio.sleep(0.02)
    assert order == []  # the second handed over early, but the first still holds its turn
    release_first.set()
    await asyncio.gather(*tasks)
    assert order == ["first", "third", "second"]


async def test_an_update_given_up_while_waiting_keeps_the_line_in_order():
    turns = ChatTurns()
    first, second, third = turns.take(3), turns.take(3), turns.take(3)
    order: list[str] = []
    gate = asyncio.Event()

    async def hold(turn, name: str) -> None:  # type: ignore[no-untyped-def]
        async with turn.held():
            if name == "first":
                await gate.wait()
            order.append(name)

    tasks = [asyncio.create_task(hold(t, n)) for t, n in ((first, "first"), (second, "second"), (third, "third"))]
    await asyncio.sleep(0.01)
    tasks[1].cancel()  # the second is cancelled while it waits for the first
    await asyncio.sleep(0.01)
    assert order == []  # the third still waits for the first
    gate.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == ["first", "third"]


async def test_tasks_a_handler_starts_do_not_hold_its_turn():
    turns = ChatTurns()
    turn = turns.take(5)

    async def in_a_task_of_its_own():  # type: ignore[no-untyped-def]
        return held_turn()

    async with turn.held():
        assert held_turn() is turn
        assert await asyncio.create_task(in_a_task_of_its_own()) is None
    assert held_turn() is None
