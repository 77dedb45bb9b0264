"""What each step of a stream (two per event) enters: the deadline's cancel scope only
when there is a deadline, and one shared check that turns a group made only of
cancellations into the plain cancellation, on asyncio and trio."""

from __future__ import annotations

import math

import anyio
import pytest
import sniffio
import trio

from ttstream._bounds import Deadline
from ttstream._eventsource import _plain_cancellation

pytestmark = pytest.mark.anyio


async def test_concurrent_steps_each_get_their_own_plain_cancellation() -> None:
    caught: dict[int, BaseException] = {}

    async def step(i: int) -> None:
        try:
            with _plain_cancellation:  # one instance, entered by every task at once
                if sniffio.current_async_library() == "trio":
                    # trio's own nursery: cancelled from outside, a group of Cancelled
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(trio.sleep_forever)
                        nursery.start_soon(trio.sleep_forever)
                        await trio.sleep_forever()
                await anyio.sleep_forever()
        except BaseException as exc:
            caught[i] = exc
            raise

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tasks:
            for i in range(8):
                tasks.start_soon(step, i)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
    assert scope.cancelled_caught
    assert sorted(caught) == list(range(8))
    for exc in caught.values():
        assert type(exc) is anyio.get_cancelled_exc_class()
        assert exc.__cause__ is None
        if isinstance(exc.__context__, BaseExceptionGroup):
            assert exc.__suppress_context__
    assert len({id(exc) for exc in caught.values()}) == 8


async def test_a_group_with_another_error_passes_unchanged() -> None:
    group = BaseExceptionGroup("g", [ValueError("x")])
    with pytest.raises(BaseExceptionGroup) as info, _plain_cancellation:
        raise group
    assert info.value is group


async def test_only_a_deadline_opens_a_cancel_scope_per_step() -> None:
    assert not isinstance(Deadline(None).scope(), anyio.CancelScope)
    assert Deadline(None).at == math.inf
    bounded = Deadline(5.0)
    assert isinstance(bounded.scope(), anyio.CancelScope)
    assert bounded.at < math.inf
