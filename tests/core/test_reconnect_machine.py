"""The reconnection rules on their own: ttstream._reconnect.Reconnection, a state machine
with no I/O, driven by hand with a fake clock (docs/reconnection.md). The same rules run
against scripted loopback servers in test_eventsource.py and test_stream_defects.py."""

from __future__ import annotations

import pytest

from ttstream import ReconnectPolicy, ServerSentEvent, SSEDecoder, ValidationError
from ttstream._reconnect import REMEMBERED_EVENTS, Reconnection, State, stream_policy


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def machine(clock: Clock | None = None, **policy: float) -> Reconnection:
    options = {"delay": 1.0, "max_delay": 1.0, **policy}
    return Reconnection(ReconnectPolicy(**options), clock=clock or Clock())  # type: ignore[arg-type]


def body(decoder: SSEDecoder, raw: bytes) -> list[ServerSentEvent]:
    """The events of one whole body (the decoder then starts the next body)."""
    events = decoder.feed(raw)
    decoder.close()
    return events


def broke(m: Reconnection, decoder: SSEDecoder | None = None, **kwargs: object) -> object:
    last = decoder.last_event_id if decoder is not None else ""
    return m.broke("the connection broke", last_event_id=last, **kwargs)  # type: ignore[arg-type]


def test_the_states_of_one_reconnection() -> None:
    clock = Clock()
    m = machine(clock)
    assert m.state is State.CONNECTING
    m.opened()
    assert (m.state, m.connections) == (State.OPEN, 1)
    notice = m.broke("the body ended", last_event_id="7")
    assert notice is not None
    assert m.state is State.WAITING
    assert (notice.attempt, notice.last_event_id, notice.regenerating) == (1, "7", False)
    assert m.due_at == clock.now + notice.delay
    clock.now += notice.delay / 2
    assert m.wait_left() == pytest.approx(notice.delay / 2)
    clock.now += notice.delay
    assert m.wait_left() == 0.0
    m.connecting()
    assert m.state is State.CONNECTING


def test_attempts_are_limited_when_nothing_new_arrives() -> None:
    m = machine(max_attempts=2)
    m.opened()
    assert broke(m) is not None
    assert broke(m) is not None  # a reconnection whose request failed counts too
    assert broke(m) is None
    assert m.state is State.CLOSED


def test_a_new_event_resets_the_attempts() -> None:
    m, decoder = machine(max_attempts=1), SSEDecoder()
    for i in range(10):  # a proxy that cuts after every event
        m.opened()
        [event] = body(decoder, b"id: %d\ndata: e%d\n\n" % (i, i))
        assert m.deliver(event)
        notice = broke(m, decoder)
        assert notice is not None
        assert notice.attempt == 1  # 1 after progress, every time


def test_with_confirm_progress_only_a_confirmed_new_event_resets_the_attempts() -> None:
    # An image stream's machine: new events that bring no image (a fresh id, a status)
    # count no progress, so a server that ends every connection after one runs out.
    policy = ReconnectPolicy(delay=1.0, max_delay=1.0, max_attempts=2)
    m, decoder = Reconnection(policy, clock=Clock(), confirm_progress=True), SSEDecoder()
    plans = []
    for i in range(3):
        m.opened()
        [event] = body(decoder, b"id: %d\ndata: status %d\n\n" % (i, i))
        assert m.deliver(event)
        plans.append(broke(m, decoder))
    assert plans[2] is None
    m, decoder = Reconnection(policy, clock=Clock(), confirm_progress=True), SSEDecoder()
    for i in range(5):  # a proxy that cuts after every new image
        m.opened()
        [event] = body(decoder, b"id: %d\ndata: image %d\n\n" % (i, i))
        assert m.deliver(event)
        m.progressed()
        notice = broke(m, decoder)
        assert notice is not None
        assert notice.attempt == 1
    m.opened()
    [again] = body(decoder, b"id: 9\ndata: image 4\n\n")  # the same image: no progress
    assert m.deliver(again)
    m.progressed()
    assert broke(m, decoder).attempt == 2  # type: ignore[attr-defined]


def test_the_same_event_again_is_no_progress() -> None:
    m, decoder = machine(max_attempts=2), SSEDecoder()
    plans = []
    for i in range(3):
        m.opened()
        [event] = body(decoder, b"id: %d\ndata: same\n\n" % i)  # new id, same content
        assert m.deliver(event)
        plans.append(broke(m, decoder))
    assert plans[:2] != [None, None]
    assert plans[2] is None


def test_the_budget_runs_from_the_first_failure_since_progress() -> None:
    clock, decoder = Clock(), SSEDecoder()
    m = machine(clock, max_attempts=100, budget=10.0, delay=0.0, max_delay=0.0)
    m.opened()
    assert broke(m) is not None
    clock.now += 6
    assert broke(m) is not None
    clock.now += 6  # 12 s after the first failure: past the budget
    assert broke(m) is None

    clock, m = Clock(), machine(clock, max_attempts=100, budget=10.0, delay=0.0, max_delay=0.0)
    for i in range(5):  # progress between failures: the budget starts again each time
        m.opened()
        [event] = body(decoder, b"data: e%d\n\n" % i)
        assert m.deliver(event)
        clock.now += 6
        assert broke(m) is not None
        clock.now += 6


def test_a_wait_past_the_budget_gives_up_at_once() -> None:
    m = machine(budget=60.0)
    m.opened()
    assert broke(m, retry_ms=100_000_000) is None
    assert m.state is State.CLOSED


def test_the_wait_is_never_below_the_servers_retry() -> None:
    m = machine(delay=0.1, max_delay=0.2, max_attempts=5)
    m.opened()
    delays = []
    for _ in range(5):
        notice = broke(m, retry_ms=5000)
        assert notice is not None
        delays.append(notice.delay)  # type: ignore[attr-defined]
    assert all(delay >= 5.0 for delay in delays)


def test_regeneration_needs_the_callers_opt_in_and_is_never_reset() -> None:
    decoder = SSEDecoder()
    policy = ReconnectPolicy(delay=0.0, regenerate=1, max_attempts=10)
    m = Reconnection(policy, clock=Clock(), idempotent=False)
    m.opened()
    notice = m.broke("cut", last_event_id="")
    assert notice is not None
    assert notice.regenerating
    m.opened()
    [event] = body(decoder, b"data: new\n\n")
    assert m.deliver(event)  # progress resets the attempts, not the regenerations
    assert m.broke("cut", last_event_id="") is None
    assert m.regenerations == 1

    refused = Reconnection(ReconnectPolicy(delay=0.0), clock=Clock(), idempotent=False)
    refused.opened()
    assert refused.broke("cut", last_event_id="") is None  # regenerate=0: never billed again


def test_a_resume_target_or_an_id_is_no_regeneration() -> None:
    m = Reconnection(ReconnectPolicy(delay=0.0), clock=Clock(), idempotent=False)
    m.opened()
    resumed = m.broke("cut", last_event_id="", resumable=True)
    assert resumed is not None
    assert not resumed.regenerating
    m.opened()
    with_id = m.broke("cut", last_event_id="3")
    assert with_id is not None
    assert not with_id.regenerating
    assert m.regenerations == 0


def test_a_replay_is_the_same_id_and_the_same_content() -> None:
    m, decoder = machine(), SSEDecoder()
    m.opened()
    assert all(m.deliver(e) for e in body(decoder, b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n"))
    assert broke(m, decoder) is not None
    m.opened()
    replay = body(
        decoder, b"id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\nid: 2\ndata: b\n\n"
    )
    # a, b: delivered before; c: new, which ends the check; b again after it: delivered
    assert [m.deliver(e) for e in replay] == [False, False, True, True]


def test_a_constant_id_never_makes_a_replay_on_its_own() -> None:
    m, decoder = machine(), SSEDecoder()
    m.opened()
    assert [m.deliver(e) for e in body(decoder, b"id: job\ndata: 0\n\nid: job\ndata: 1\n\n")] == [
        True,
        True,
    ]
    assert broke(m, decoder) is not None
    m.opened()
    [final] = body(decoder, b"id: job\ndata: final\n\n")
    assert m.deliver(final)


def test_an_event_whose_id_was_inherited_is_never_a_replay() -> None:
    m, decoder = machine(), SSEDecoder()
    m.opened()
    assert all(m.deliver(e) for e in body(decoder, b"id: 5\ndata: a\n\n"))
    assert broke(m, decoder) is not None
    m.opened()
    [again] = body(decoder, b"data: a\n\n")  # id 5 inherited, not sent in this body
    assert again.id == "5"
    assert m.deliver(again)


def test_the_replay_check_stops_at_the_resumed_id() -> None:
    m, decoder = machine(), SSEDecoder()
    m.opened()
    assert all(m.deliver(e) for e in body(decoder, b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n"))
    assert broke(m, decoder) is not None  # resumes after 2
    m.opened()
    replay = body(decoder, b"id: 2\ndata: b\n\nid: 1\ndata: a\n\n")
    assert [m.deliver(e) for e in replay] == [False, True]  # 2 ended the replay


def test_memory_is_bounded_by_the_remembered_events() -> None:
    m, decoder = machine(), SSEDecoder()
    m.opened()
    many = b"".join(b"id: %d\ndata: %d\n\n" % (i, i) for i in range(REMEMBERED_EVENTS * 3))
    assert all(m.deliver(e) for e in body(decoder, many))
    assert m.remembered == REMEMBERED_EVENTS


def test_restart_does_not_count_and_close_ends_everything() -> None:
    m = machine(max_attempts=1)
    m.opened()
    m.request_restart()
    assert m.restart_requested
    notice = m.restart(last_event_id="4")
    assert (notice.attempt, notice.delay, notice.last_event_id) == (0, 0.0, "4")
    assert (m.state, m.restart_requested) == (State.CONNECTING, False)
    m.opened()
    assert broke(m) is not None  # the one attempt is still there
    m.close()
    assert m.state is State.CLOSED
    assert broke(m) is None
    m.request_restart()
    assert not m.restart_requested
    [event] = SSEDecoder().feed(b"data: x\n\n")
    assert not m.deliver(event)  # nothing is delivered after the end


def test_a_204_stops_for_good() -> None:
    m = machine(max_attempts=5)
    m.opened(no_content=True)
    assert (m.state, m.connections) == (State.STOPPED, 0)
    assert broke(m) is None
    assert m.state is State.CLOSED


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("max_attempts", -1, "an int >= 0"),
        ("max_attempts", True, "an int >= 0"),
        ("regenerate", 1.5, "an int >= 0"),
        ("budget", float("inf"), "a finite number of seconds >= 0"),
        ("budget", -1, "a finite number of seconds >= 0"),
        ("delay", float("nan"), "a finite number of seconds >= 0"),
        ("max_delay", "30", "a finite number of seconds >= 0"),
    ],
)
def test_a_policy_refuses_what_bounds_nothing_with_a_validation_error(
    field: str, value: object, allowed: str
) -> None:
    """Counts are ints >= 0 and seconds finite numbers >= 0 (an infinite budget would
    never end the reconnections): a ``ValidationError`` naming the field."""
    with pytest.raises(ValidationError, match=f"{field} must be {allowed}") as info:
        ReconnectPolicy(**{field: value})  # type: ignore[arg-type]
    assert info.value.param == field
    assert ReconnectPolicy(max_attempts=0, budget=0, delay=0, max_delay=0).budget == 0


def test_a_streams_policy_is_the_calls_checked_else_the_clients() -> None:
    client, call = ReconnectPolicy(), ReconnectPolicy(max_attempts=2)
    assert stream_policy(None, client) is client
    assert stream_policy(call, client) is call
    with pytest.raises(ValidationError, match="reconnect must be a ttstream") as caught:
        stream_policy({"max_attempts": 2}, client)  # type: ignore[arg-type]
    assert caught.value.param == "reconnect"
