"""What a ttstream consumer sees under each fault of the emulator (X-Emulator-Fault),
over real loopback HTTP, on asyncio and trio. docs/emulator.md, "Faults", has the same table.

After every test the emulator has no stream open: each ttstream stream, however it
ended, closed its connection (or the server ended it).
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import pytest

from tests.support.streams import assert_no_stream_open
from ttstream import (
    APIStatusError,
    APITimeoutError,
    AsyncClient,
    Completed,
    EventSource,
    EventTooLargeError,
    IncompleteStreamError,
    MalformedEventError,
    PartialImage,
    ProtocolError,
    Reconnecting,
    ReconnectPolicy,
    StreamError,
    StreamItem,
    ValidationError,
)
from ttstream.emulator import EmulatorServer, FaultSpec, FaultSpecError, StreamRecord

pytestmark = pytest.mark.anyio

SMALL: dict[str, Any] = {"model": "gpt-image-2", "size": "64x48"}
NO_WAIT = ReconnectPolicy(delay=0)


@pytest.fixture(autouse=True)
def no_stream_left_open(server: EmulatorServer) -> Iterator[None]:
    """Every test ends with no stream open on the server."""
    yield
    assert_no_stream_open(server)


def unique(spec: str) -> str:
    """``spec`` with a ``key`` item of its own, so request counts stay apart."""
    return f"{spec};key={uuid.uuid4().hex}"


@contextlib.asynccontextmanager
async def faulty(
    server: EmulatorServer, spec: str | None, *, http: dict[str, Any] | None = None, **kwargs: Any
) -> AsyncIterator[AsyncClient]:
    """A ttstream client whose requests all carry ``X-Emulator-Fault: spec``; ``http``
    are more arguments of its ``httpx2.AsyncClient``, ``kwargs`` of the ``AsyncClient``."""
    headers = {} if spec is None else {"X-Emulator-Fault": spec}
    async with httpx2.AsyncClient(headers=headers, **(http or {})) as http_client:
        yield AsyncClient("k", base_url=server.base_url, http_client=http_client, **kwargs)


async def consume(
    server: EmulatorServer,
    spec: str | None,
    seen: list[StreamItem] | None = None,
    *,
    client: dict[str, Any] | None = None,
    http: dict[str, Any] | None = None,
    partial_images: int = 2,
    **params: Any,
) -> list[StreamItem]:
    """Streams one small generation under ``spec`` into ``seen`` (which keeps what
    arrived when it raises); ``client`` and ``http`` go to :func:`faulty`."""
    seen = [] if seen is None else seen
    async with faulty(server, spec, http=http, **(client or {})) as tt:
        stream = tt.generate("a lighthouse", partial_images=partial_images, **SMALL, **params)
        async with stream:
            async for item in stream:
                seen.append(item)
    return seen


def indexes(items: list[StreamItem]) -> list[int]:
    return [item.index for item in items if isinstance(item, PartialImage)]


# Endings


@pytest.mark.parametrize("ending", ["drop-mid-event", "drop-between-events"])
async def test_a_dropped_connection_is_an_incomplete_stream_without_a_new_request(
    server: EmulatorServer, ending: str
) -> None:
    spec = unique(ending)
    seen: list[StreamItem] = []
    with pytest.raises(IncompleteStreamError) as caught:
        await consume(server, spec, seen)
    assert indexes(seen) == [0, 1]
    assert caught.value.last_partial == seen[-1]
    assert isinstance(caught.value.__cause__, httpx2.TransportError)
    assert server.stream_stats.requests(spec) == 1


async def test_a_clean_end_before_the_completed_event_is_an_incomplete_stream(
    server: EmulatorServer,
) -> None:
    spec = unique("end-early")
    seen: list[StreamItem] = []
    with pytest.raises(IncompleteStreamError) as caught:
        await consume(server, spec, seen)
    assert indexes(seen) == [0, 1]
    assert caught.value.last_partial == seen[-1]
    assert "(last preview: preview 2, partial_image_index 1)" in str(caught.value)
    assert caught.value.__cause__ is None
    assert server.stream_stats.requests(spec) == 1


@pytest.mark.parametrize("shape", ["error-nested", "error-flat"])
async def test_an_error_event_raises_stream_error_after_the_previews(
    server: EmulatorServer, shape: str
) -> None:
    seen: list[StreamItem] = []
    with pytest.raises(StreamError) as caught:
        await consume(server, shape, seen)
    assert indexes(seen) == [0, 1]
    assert caught.value.code == "emulated_failure"
    assert shape in caught.value.message
    assert caught.value.type == ("server_error" if shape == "error-nested" else None)


# Before the stream


@pytest.mark.parametrize("status", [429, 500, 503])
@pytest.mark.parametrize("times", [1, 2])
async def test_an_error_status_is_retried_until_it_passes(
    server: EmulatorServer, status: int, times: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # retry-after-ms=1 must win over the backoff, made 30 s here: a wait of seconds fails.
    monkeypatch.setattr("ttstream._connect.backoff_delay", lambda attempt: 30.0)
    spec = unique(f"status={status};retry-after-ms=1;times={times}")
    started = time.monotonic()
    items = await consume(server, spec, [])
    assert indexes(items) == [0, 1]
    assert isinstance(items[-1], Completed)
    assert server.stream_stats.requests(spec) == times + 1
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_an_error_status_beyond_the_retries_is_an_api_status_error(
    server: EmulatorServer, status: int
) -> None:
    spec = unique(f"status={status};retry-after-ms=1;times=3")
    seen: list[StreamItem] = []
    with pytest.raises(APIStatusError) as caught:
        await consume(server, spec, seen)
    assert seen == []
    assert caught.value.status_code == status
    assert caught.value.code == ("rate_limit_exceeded" if status == 429 else "emulated_failure")
    assert caught.value.request_id is not None
    assert server.stream_stats.requests(spec) == 3  # the request and max_retries=2 retries


async def test_a_400_is_not_retried(server: EmulatorServer) -> None:
    spec = unique("status=400")
    with pytest.raises(APIStatusError) as caught:
        await consume(server, spec, [])
    assert caught.value.status_code == 400
    assert server.stream_stats.requests(spec) == 1


async def test_retry_after_in_seconds_is_honoured(server: EmulatorServer) -> None:
    spec = unique("status=503;retry-after=0.8;times=1")
    started = time.monotonic()
    items = await consume(server, spec, [])
    assert isinstance(items[-1], Completed)
    assert server.stream_stats.requests(spec) == 2
    # 0.8 s is longer than any default first backoff (at most 0.5 s).
    assert time.monotonic() - started >= 0.8


async def test_a_json_answer_to_a_stream_request_is_a_protocol_error(
    server: EmulatorServer,
) -> None:
    seen: list[StreamItem] = []
    with pytest.raises(ProtocolError, match="application/json"):
        await consume(server, unique("wrong-content-type"), seen)
    assert seen == []


# Timing


async def test_a_stall_past_the_read_timeout_is_a_read_timeout(server: EmulatorServer) -> None:
    timeout = httpx2.Timeout(5.0, read=0.3)
    seen: list[StreamItem] = []
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as caught:
        await consume(server, unique("stall=2"), seen, client={"timeout": timeout})
    assert time.monotonic() - started < 1.9  # before the stall's end
    assert caught.value.timeout == "read"
    assert indexes(seen) == [0]
    assert caught.value.last_partial == seen[0]


async def test_a_stall_past_the_deadline_is_a_deadline_timeout(server: EmulatorServer) -> None:
    seen: list[StreamItem] = []
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as caught:
        await consume(server, unique("stall=2"), seen, deadline=0.3)
    assert time.monotonic() - started < 1.9  # before the stall's end
    assert caught.value.timeout == "deadline"
    assert indexes(seen) == [0]
    assert caught.value.last_partial == seen[0]


async def test_a_body_dripped_byte_by_byte_arrives_intact(server: EmulatorServer) -> None:
    clean = await consume(server, None)
    async with (
        faulty(server, "drip") as client,
        client.generate("a lighthouse", partial_images=2, **SMALL) as stream,
    ):
        dripped = [item async for item in stream]
        record = server.stream_stats.stream(stream.request_id or "")
    assert [type(item) for item in dripped] == [PartialImage, PartialImage, Completed]
    assert [getattr(item, "b64_json", None) for item in dripped] == [
        getattr(item, "b64_json", None) for item in clean
    ]
    assert record is not None
    assert record.writes == record.bytes_sent > 1000  # one byte per write


# Rewritten events


async def test_malformed_json_is_a_malformed_event_error(server: EmulatorServer) -> None:
    seen: list[StreamItem] = []
    with pytest.raises(MalformedEventError) as caught:
        await consume(server, "malformed-json", seen)
    assert indexes(seen) == [0, 1]
    assert caught.value.event == "image_generation.completed"


async def test_invalid_base64_fails_at_its_event(server: EmulatorServer) -> None:
    seen: list[StreamItem] = []
    with pytest.raises(MalformedEventError, match="b64_json of Completed is not valid base64"):
        await consume(server, "invalid-base64", seen)
    assert indexes(seen) == [0, 1]  # the previews came; the bad final image did not
    assert not any(isinstance(item, Completed) for item in seen)


async def test_an_oversized_event_is_an_event_too_large_error(server: EmulatorServer) -> None:
    seen: list[StreamItem] = []
    with pytest.raises(EventTooLargeError) as caught:
        await consume(server, "oversized=200000", seen, client={"max_event_bytes": 100_000})
    assert indexes(seen) == [0, 1]
    assert caught.value.limit == 100_000


async def test_an_oversized_event_within_the_limit_is_one_more_preview(
    server: EmulatorServer,
) -> None:
    items = await consume(server, "oversized=200000", [])
    assert indexes(items) == [0, 1, 2]
    extra = items[2]
    assert isinstance(extra, PartialImage)
    assert len(extra.extra["padding"]) > 190_000
    assert isinstance(items[-1], Completed)
    assert extra.b64_json == items[-1].b64_json


# Reconnection


async def test_a_stream_with_ids_resumes_after_the_last_event_id(server: EmulatorServer) -> None:
    spec = unique("ids;drop-after=2")
    items = await consume(server, spec, [], partial_images=3, reconnect=NO_WAIT)
    notices = [item for item in items if isinstance(item, Reconnecting)]
    assert len(notices) == 1
    assert (notices[0].regenerating, notices[0].last_event_id) == (False, "2")
    assert [type(item) for item in items] == [
        PartialImage,
        PartialImage,
        Reconnecting,
        PartialImage,
        Completed,
    ]
    assert indexes(items) == [0, 1, 2]  # each event once
    assert server.stream_stats.requests(spec) == 2


async def test_a_stream_without_ids_regenerates_only_when_allowed(
    server: EmulatorServer,
) -> None:
    spec = unique("drop-between-events;times=1")
    policy = ReconnectPolicy(delay=0, regenerate=1)
    items = await consume(server, spec, [], reconnect=policy)
    assert [type(item) for item in items] == [
        PartialImage,
        PartialImage,
        Reconnecting,
        PartialImage,
        PartialImage,
        Completed,
    ]
    notice = items[2]
    assert isinstance(notice, Reconnecting)
    assert (notice.regenerating, notice.last_event_id) == (True, "")
    assert server.stream_stats.requests(spec) == 2


@pytest.mark.parametrize("policy", [{"max_attempts": 5}, 5, "always"])
async def test_a_reconnect_that_is_no_policy_is_refused_before_any_request(
    server: EmulatorServer, policy: Any
) -> None:
    # It was taken, and the first break raised AttributeError from inside the
    # reconnection, after the (billed) request.
    spec = unique("ids;drop-after=1")
    calls = {
        "AsyncClient": lambda tt: AsyncClient("k", base_url=server.base_url, reconnect=policy),
        "generate": lambda tt: tt.generate("a kite", reconnect=policy, **SMALL),
        "edit": lambda tt: tt.edit("a hat", images=[b"x"], reconnect=policy, **SMALL),
        "responses.stream": lambda tt: tt.responses.stream(
            model="gpt-5", input="a kite", reconnect=policy
        ),
        "responses.resume": lambda tt: tt.responses.resume("resp_1", reconnect=policy),
        "EventSource": lambda tt: EventSource(
            tt.http_client, "GET", server.base_url, reconnect=policy
        ),
    }
    async with faulty(server, spec) as tt:
        for name, call in calls.items():
            with pytest.raises(ValidationError, match="reconnect must be a ttstream") as caught:
                call(tt)
            assert caught.value.param == "reconnect", name
    assert server.stream_stats.requests(spec) == 0


@pytest.mark.parametrize(
    ("spec", "policy"),
    [
        ("drop-after=3", NO_WAIT),
        ("drop-after=3;times=1", ReconnectPolicy(delay=0, regenerate=1)),
        ("ids;drop-after=3", NO_WAIT),
    ],
    ids=["no-ids", "no-ids-regenerate", "ids"],
)
async def test_a_connection_cut_after_the_completed_event_ends_the_stream(
    server: EmulatorServer, spec: str, policy: ReconnectPolicy
) -> None:
    # Event 3 is the completed event: every image arrived, only the end of the body is
    # missing. The consumer has all it asked for; a new request could only repeat it.
    spec = unique(spec)
    items = await consume(server, spec, reconnect=policy)
    assert [type(item) for item in items] == [PartialImage, PartialImage, Completed]
    assert server.stream_stats.requests(spec) == 1


async def test_a_cut_inside_an_event_resumes_after_the_last_whole_event(
    server: EmulatorServer,
) -> None:
    # Event 3, the completed event, is cut after its `id: 3` line arrived.
    spec = unique("ids;drop-mid-event;times=1")
    items = await consume(server, spec, reconnect=NO_WAIT)
    assert [type(item) for item in items] == [PartialImage, PartialImage, Reconnecting, Completed]
    notice = items[2]
    assert isinstance(notice, Reconnecting)
    assert notice.last_event_id == "2"
    assert server.stream_stats.requests(spec) == 2


# Backpressure and closing


async def test_a_slow_consumer_holds_the_server_back(server: EmulatorServer) -> None:
    pad = 3_000_000
    # The kernel may grow a receive buffer to tens of MB on loopback, which would hold
    # the whole stream whatever the client does: pin it, so only ttstream's reading is
    # measured (the server's send buffer still holds a few MB).
    transport = httpx2.AsyncHTTPTransport(
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)]
    )
    stats = server.stream_stats
    async with (
        faulty(server, f"pad={pad}", http={"transport": transport}) as client,
        client.generate("a lighthouse", partial_images=3, **SMALL) as stream,
    ):
        first = await stream.__anext__()
        await anyio.sleep(0.5)
        held = stats.stream(stream.request_id or "")
        await anyio.sleep(0.2)
        still_held = stats.stream(stream.request_id or "")
        rest = [item async for item in stream]
        done = stats.stream(stream.request_id or "")
    assert isinstance(held, StreamRecord)
    assert isinstance(done, StreamRecord)
    assert held.open
    assert still_held == held  # the server made no progress while the consumer slept
    assert held.bytes_sent < done.bytes_sent - pad  # a whole event was never produced
    assert done.bytes_sent > 4 * pad
    events = [first, *rest]
    assert [type(event) for event in events] == [PartialImage] * 3 + [Completed]
    assert indexes(events) == [0, 1, 2]
    assert all(len(event.extra["padding"]) == pad for event in events)  # type: ignore[union-attr]


async def test_breaking_out_closes_the_connection_at_once(server: EmulatorServer) -> None:
    async with (
        faulty(server, "stall=5") as client,
        client.generate("a lighthouse", partial_images=2, **SMALL) as stream,
    ):
        async for item in stream:
            assert isinstance(item, PartialImage)
            record = server.stream_stats.stream(stream.request_id or "")
            assert record is not None
            assert record.open
            break
    for _ in range(100):  # 1 s, well before the 5 s stall would end the stream by itself
        if not server.stream_stats.open_streams:
            break
        await anyio.sleep(0.01)
    assert server.stream_stats.open_streams == 0


# Choosing faults


async def test_faults_can_be_chosen_with_the_query_parameter(server: EmulatorServer) -> None:
    seen: list[StreamItem] = []
    with pytest.raises(IncompleteStreamError):
        await consume(server, None, seen, http={"params": {"fault": "end-early"}})
    assert indexes(seen) == [0, 1]


async def test_an_unknown_fault_is_refused_naming_it(server: EmulatorServer) -> None:
    with pytest.raises(APIStatusError) as caught:
        await consume(server, "end-early;explode=now", [])
    assert caught.value.status_code == 400
    assert caught.value.param == "X-Emulator-Fault"
    assert "'explode=now'" in caught.value.message


def test_a_spec_reads_into_its_fields() -> None:
    faults = FaultSpec.parse(" ids ; retry=20; drop-after=3;pad=10;DRIP; key=a=b;")
    assert faults == FaultSpec(
        spec=" ids ; retry=20; drop-after=3;pad=10;DRIP; key=a=b;",
        ids=True,
        retry=20,
        drop_after=3,
        pad=10,
        drip=0.0,
        key="a=b",
    )
    assert FaultSpec.parse("status=429;retry-after=1.5;times=2").status_error() is not None
    assert FaultSpec.parse("").status_error() is None


def test_resume_status_answers_only_a_resume() -> None:
    faults = FaultSpec.parse("resume-status=429;retry-after-ms=0")
    assert faults.status_error() is None  # the POST is served
    error = faults.status_error(resume=True)
    assert error is not None
    assert (error.status, error.headers) == (429, {"retry-after-ms": "0"})


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("nope", "unknown fault 'nope'"),
        ("stall", "needs a value"),
        ("stall=-1", "seconds"),
        ("stall=nan", "seconds"),
        ("end-early=1", "takes no value"),
        ("status=200", "from 400 to 599"),
        ("pad=1e3", "whole number"),
        ("ids;ids", "given twice"),
        ("end-early;error-flat", "both end the stream"),
        ("retry=5", "needs 'ids'"),
        ("retry-after=1", "needs 'status=<code>'"),
    ],
)
def test_a_bad_spec_is_refused_saying_why(spec: str, complaint: str) -> None:
    with pytest.raises(FaultSpecError, match=complaint):
        FaultSpec.parse(spec)


def test_the_emulator_answers_a_bad_spec_with_400(server: EmulatorServer) -> None:
    answer = httpx2.post(
        f"{server.base_url}/images/generations?fault=drop-sometimes",
        headers={"TT-API-KEY": "k"},
        json={"prompt": "a kite", "stream": True, **SMALL},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["param"], error["code"]) == ("X-Emulator-Fault", "invalid_fault")
    assert "'drop-sometimes'" in error["message"]


# Hostile bodies and noise


async def test_a_bomb_is_refused_before_it_is_decoded(server: EmulatorServer) -> None:
    spec = unique("bomb=1000000000")
    with pytest.raises(ProtocolError, match="stacked Content-Encoding 'gzip, gzip'"):
        await consume(server, spec)
    body = {"model": "gpt-image-2", "prompt": "a kite", "size": "64x48", "stream": True}
    async with (
        httpx2.AsyncClient(timeout=30) as http,  # the emulator compresses the bomb as it goes
        http.stream(
            "POST",
            f"{server.base_url}/images/generations",
            headers={"TT-API-KEY": "k", "X-Emulator-Fault": spec},
            json=body,
        ) as answer,
    ):
        assert answer.headers["content-encoding"] == "gzip, gzip"
        raw = b""
        async with contextlib.aclosing(answer.aiter_raw()) as chunks:
            async for chunk in chunks:
                raw += chunk
                if len(raw) > 4096:
                    break
    inner = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(raw, 4096)
    event = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(inner, 100)
    assert event.startswith(b"event: image_generation.partial_image\ndata: xxx")


async def test_echo_headers_answers_an_error_that_quotes_the_key(server: EmulatorServer) -> None:
    key = "sk-echoed-key-4f5e6d"
    async with httpx2.AsyncClient() as http:
        answer = await http.post(
            f"{server.base_url}/images/generations",
            headers={"TT-API-KEY": key, "X-Emulator-Fault": "echo-headers;status=503"},
            json={"model": "gpt-image-2", "prompt": "a kite"},
        )
    assert answer.status_code == 503
    assert f"tt-api-key: {key}" in answer.json()["error"]["message"]
    async with httpx2.AsyncClient(headers={"X-Emulator-Fault": unique("echo-headers")}) as http:
        client = AsyncClient(key, base_url=server.base_url, http_client=http, max_retries=0)
        with pytest.raises(APIStatusError) as caught:
            await client.generate("a kite", **SMALL).__anext__()
    assert caught.value.status_code == 400
    assert "Your request headers were" in caught.value.message
    assert key not in str(caught.value)
    assert key not in caught.value.message


async def test_heartbeat_data_sends_a_ping_data_frame_after_every_event(
    server: EmulatorServer,
) -> None:
    body = {**SMALL, "prompt": "a kite", "stream": True, "partial_images": 2}
    async with httpx2.AsyncClient() as http:
        answer = await http.post(
            f"{server.base_url}/images/generations",
            headers={"TT-API-KEY": "k", "X-Emulator-Fault": unique("heartbeat-data")},
            json=body,
        )
    frames = [frame for frame in answer.text.split("\n\n") if frame]
    assert frames[1::2] == ["data: : PING"] * 3
    assert [frame.split("\n")[0] for frame in frames[0::2]] == [
        "event: image_generation.partial_image",
        "event: image_generation.partial_image",
        "event: image_generation.completed",
    ]
