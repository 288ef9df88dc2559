"""Announcements of published versions over Redis pub/sub: heard by a listener, and harmless
(False, nothing raised) when Redis is away; the listener outlives a Redis restart and a handler
that fails."""

from __future__ import annotations

import asyncio

from app.serving.notifications import announce, listen
from tests.support.processes import RedisServer, free_port, start_redis


async def announce_until(heard: asyncio.Event, redis_url: str, tries: int = 100) -> None:
    """Announces every 0.1 s until `heard` is set (a listener subscribes a moment after it
    starts, and misses what came before)."""
    for _ in range(tries):
        await asyncio.to_thread(announce, redis_url, "m", 1)
        try:
            await asyncio.wait_for(heard.wait(), 0.1)
            return
        except TimeoutError:
            continue


def test_an_announcement_reaches_a_listener_even_across_a_redis_restart(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> int:
        heard = asyncio.Event()
        count = 0

        async def on_announcement() -> None:
            nonlocal count
            count += 1
            heard.set()

        listener = asyncio.create_task(listen(redis_server.url, on_announcement))
        try:
            for _ in range(2):
                heard.clear()
                await announce_until(heard, redis_server.url)  # the listener has subscribed
                assert heard.is_set()
                redis_server.stop()  # the listener reconnects to the restarted server
                restarted = start_redis(redis_server.port)
                redis_server.process = restarted.process
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        return count

    assert asyncio.run(scenario()) >= 2


def test_announcing_without_redis_is_harmless() -> None:
    assert announce(f"redis://127.0.0.1:{free_port()}/0", "m", 1) is False


def test_a_failing_handler_does_not_end_the_listener(redis_server: RedisServer) -> None:
    async def scenario() -> int:
        calls = 0
        heard_again = asyncio.Event()

        async def on_announcement() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ValueError("a refresh that failed")
            heard_again.set()

        listener = asyncio.create_task(listen(redis_server.url, on_announcement))
        try:
            await announce_until(heard_again, redis_server.url)  # heard, failed, heard again
            assert heard_again.is_set() and not listener.done()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        return calls

    assert asyncio.run(scenario()) >= 2
