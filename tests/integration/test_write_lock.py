"""``WriteLock``: the event loop's writers and a thread (the flows' pump) take turns, the loop never blocks,
and a coroutine cancelled while it waits leaves the lock free."""

from __future__ import annotations

import asyncio
import threading

from engine.store.write_lock import WriteLock


async def test_a_coroutine_waits_for_the_thread_without_blocking_the_loop() -> None:
    lock = WriteLock()
    held, release = threading.Event(), threading.Event()
    order: list[str] = []

    def pump() -> None:
        with lock.held():
            held.set()
            release.wait(5)
            order.append("thread")

    thread = threading.Thread(target=pump)
    thread.start()
    assert await asyncio.to_thread(held.wait, 5)

    async def writer() -> None:
        async with lock:
            order.append("coroutine")

    waiting = asyncio.create_task(writer())
    ticks = 0
    for _ in range(10):  # the loop runs while the writer waits for the thread
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 10 and not waiting.done()
    release.set()
    await asyncio.wait_for(waiting, 5)
    await asyncio.to_thread(thread.join, 5)
    assert order == ["thread", "coroutine"]


async def test_the_thread_waits_for_a_coroutine_that_holds_it() -> None:
    lock = WriteLock()
    taken = threading.Event()

    def pump() -> None:
        with lock.held():
            taken.set()

    async with lock:
        thread = threading.Thread(target=pump)
        thread.start()
        assert not await asyncio.to_thread(taken.wait, 0.2)
    assert await asyncio.to_thread(taken.wait, 5)
    await asyncio.to_thread(thread.join, 5)


async def test_a_writer_cancelled_while_it_waits_leaves_the_lock_free() -> None:
    lock = WriteLock()
    held, release = threading.Event(), threading.Event()

    def pump() -> None:
        with lock.held():
            held.set()
            release.wait(5)

    thread = threading.Thread(target=pump)
    thread.start()
    assert await asyncio.to_thread(held.wait, 5)

    async def writer() -> None:
        async with lock:
            raise AssertionError("never taken: cancelled first")

    waiting = asyncio.create_task(writer())
    await asyncio.sleep(0.05)
    waiting.cancel()
    release.set()  # the waiting thread may take the lock now: it must give it back
    await asyncio.wait([waiting], timeout=5)
    assert waiting.cancelled()
    await asyncio.to_thread(thread.join, 5)
    async with asyncio.timeout(5):
        async with lock:  # free for the loop
            pass
    assert await asyncio.to_thread(_takes, lock)  # and for a thread


def _takes(lock: WriteLock) -> bool:
    with lock.held():
        return True
