"""EventSource on its own, over loopback HTTP with every byte scripted: the WHATWG
processing model (docs/sse.md) and ttstream's reconnection rules (docs/reconnection.md),
on asyncio and trio."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import anyio
import httpx2
import pytest

import ttstream
from tests.support.scripted_server import Answer, ScriptedServer
from ttstream import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    Comment,
    EventSource,
    EventTooLargeError,
    ProtocolError,
    Reconnecting,
    ReconnectPolicy,
    ServerSentEvent,
)
from ttstream.events import IMAGE_SIZES

pytestmark = pytest.mark.anyio

FAST = ReconnectPolicy(delay=0.0)


async def collect(server: ScriptedServer, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("reconnect", FAST)
    async with (
        httpx2.AsyncClient(follow_redirects=kwargs.pop("follow", False)) as http,
        EventSource(http, kwargs.pop("method", "GET"), server.url + "/events", **kwargs) as source,
    ):
        return [item async for item in source]


def summary(items: list[Any]) -> list[Any]:
    """Events as (event, data, id); notices as ("reconnect", last_event_id); comments."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, ServerSentEvent):
            out.append((item.event, item.data, item.id))
        elif isinstance(item, Reconnecting):
            out.append(("reconnect", item.last_event_id))
        else:
            out.append(("comment", item.text))
    return out


def no_more(last: int = 0) -> ReconnectPolicy:
    return ReconnectPolicy(delay=0.0, max_attempts=last)


# Attempts count consecutive failures since the last new event (issue 21 item 5): a body
# that delivered something new and ended is followed by one more reconnection, which this
# answer stops (WHATWG: 204 No Content means stop).
STOP = Answer(status=204, headers=())


async def test_requests_carry_the_sse_headers_and_events_arrive_in_order() -> None:
    with ScriptedServer(Answer([b"event: a\ndata: 1\n\n", b"data: 2\n\n"])) as server:
        got = await collect(server, reconnect=no_more())
    assert summary(got) == [("a", "1", ""), ("message", "2", "")]
    headers = server.requests[0].headers
    assert headers["accept"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert "last-event-id" not in headers


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbfdata: x\r\n\r\ndata: y\r\rdata: z\n\n",
        b"\xef\xbb\xbfdata: x\n\ndata: y\n\ndata: z\r\n\r\n",
    ],
)
async def test_bom_and_every_line_ending_split_anywhere(body: bytes) -> None:
    one_byte_chunks = [body[i : i + 1] for i in range(len(body))]
    with ScriptedServer(Answer(one_byte_chunks)) as server:
        got = await collect(server, reconnect=no_more())
    assert [item.data for item in got] == ["x", "y", "z"]


async def test_comments_are_skipped_unless_asked_for() -> None:
    body = [b": keep-alive\n\ndata: x\n", b":tick\n\n"]
    with ScriptedServer(Answer(body)) as server:
        skipped = await collect(server, reconnect=no_more())
        kept = await collect(server, reconnect=no_more(), comments=True)
    assert summary(skipped) == [("message", "x", "")]
    assert summary(kept) == [("comment", "keep-alive"), ("comment", "tick"), ("message", "x", "")]
    assert all(isinstance(item, Comment | ServerSentEvent) for item in kept)


async def test_a_clean_end_reconnects_with_last_event_id_after_at_least_retry() -> None:
    first = Answer([b"retry: 150\nid: 7\ndata: a\n\n"])
    second = Answer([b"id: 8\ndata: b\n\n"])
    with ScriptedServer(first, second, STOP) as server:
        started = anyio.current_time()
        got = await collect(server, reconnect=ReconnectPolicy(delay=0.0, max_attempts=1))
        waited = anyio.current_time() - started
    assert summary(got) == [
        ("message", "a", "7"),
        ("reconnect", "7"),
        ("message", "b", "8"),
        ("reconnect", "8"),
    ]
    notice = got[1]
    assert notice.delay >= 0.15  # never below the server's retry, jitter only adds
    assert waited >= 0.15
    assert server.requests[1].headers["last-event-id"] == "7"


async def test_a_network_error_reconnects_and_the_initial_last_event_id_is_honoured() -> None:
    first = Answer([b"data: a\n\n", 0.05], end="abort")
    second = Answer([b"data: b\n\nid: 9\ndata: c\n\n"])
    with ScriptedServer(first, second, STOP) as server:
        got = await collect(server, last_event_id="5", reconnect=no_more(1))
    assert summary(got) == [
        ("message", "a", "5"),
        ("reconnect", "5"),
        ("message", "b", "5"),
        ("message", "c", "9"),
        ("reconnect", "9"),
    ]
    assert [r.headers.get("last-event-id") for r in server.requests] == ["5", "5", "9"]


async def test_a_read_timeout_mid_stream_reconnects() -> None:
    first = Answer([b"id: 1\ndata: a\n\n"], end="hang")
    second = Answer([b"id: 2\ndata: b\n\n"])
    with ScriptedServer(first, second, STOP) as server:
        got = await collect(server, reconnect=no_more(1), timeout=httpx2.Timeout(5.0, read=0.3))
    assert summary(got) == [
        ("message", "a", "1"),
        ("reconnect", "1"),
        ("message", "b", "2"),
        ("reconnect", "2"),
    ]
    assert "read timeout" in got[1].reason


async def test_a_read_timeout_with_no_reconnection_left_is_an_api_timeout_error() -> None:
    hang = Answer([b"data: a\n\n"], end="hang")
    with ScriptedServer(hang) as server, pytest.raises(APITimeoutError) as info:
        await collect(server, reconnect=no_more(), timeout=httpx2.Timeout(5.0, read=0.2))
    assert info.value.timeout == "read"
    assert "127.0.0.1" in str(info.value)


async def test_a_break_with_no_reconnection_left_is_an_api_connection_error() -> None:
    cut = Answer([b"data: a\n\n"], end="abort")
    with ScriptedServer(cut) as server, pytest.raises(APIConnectionError) as info:
        await collect(server, reconnect=no_more())
    assert isinstance(info.value.__cause__, httpx2.TransportError)


async def test_204_stops_for_good() -> None:
    with ScriptedServer(Answer([b"id: 1\ndata: a\n\n"]), Answer(status=204, headers=())) as server:
        got = await collect(server, reconnect=no_more(5))
    assert summary(got) == [("message", "a", "1"), ("reconnect", "1")]
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [400, 404, 500])
async def test_an_http_error_is_typed_and_never_reconnected(status: int) -> None:
    error = Answer([b'{"error": {"message": "no"}}'], status=status, headers=())
    with ScriptedServer(error) as server, pytest.raises(APIStatusError) as info:
        await collect(server, reconnect=no_more(5))
    assert info.value.status_code == status
    assert len(server.requests) == 1


async def test_a_wrong_content_type_is_a_protocol_error_and_never_reconnected() -> None:
    wrong = Answer([b"{}"], headers=(("Content-Type", "application/json"),))
    with ScriptedServer(wrong) as server, pytest.raises(ProtocolError, match="application/json"):
        await collect(server, reconnect=no_more(5))
    assert len(server.requests) == 1


async def test_retries_before_the_first_byte_follow_the_sdk_rules() -> None:
    busy = Answer([b"{}"], status=503, headers=(("retry-after-ms", "10"),))
    with ScriptedServer(busy, Answer([b"data: ok\n\n"])) as server:
        got = await collect(server, reconnect=no_more(), max_retries=1)
    assert summary(got) == [("message", "ok", "")]
    assert len(server.requests) == 2


async def test_redirects_follow_the_callers_client_and_drop_keys_across_origins() -> None:
    with ScriptedServer(Answer([b"data: there\n\n"])) as target:
        moved = Answer(status=307, headers=(("Location", target.url + "/moved"),))
        with ScriptedServer(moved) as origin:
            keys = {
                "Authorization": "Bearer sk-secret",
                "TT-API-KEY": "tt-secret",
                "X-API-Key": "gateway-secret",
            }
            with pytest.raises(APIStatusError) as info:  # not followed by default
                await collect(origin, headers=keys, reconnect=no_more())
            assert info.value.status_code == 307
            got = await collect(origin, headers=keys, reconnect=no_more(), follow=True)
    assert summary(got) == [("message", "there", "")]
    arrived = target.requests[0].headers
    assert "authorization" not in arrived
    assert "tt-api-key" not in arrived
    assert "x-api-key" not in arrived
    assert origin.requests[0].headers["tt-api-key"] == "tt-secret"


async def test_a_redirect_within_the_origin_keeps_the_headers() -> None:
    def answer(request: Any) -> Answer:
        if request.path == "/events":
            return Answer(status=302, headers=(("Location", "/here"),))
        return Answer([b"data: here\n\n"])

    with ScriptedServer(answer) as server:
        got = await collect(server, headers={"TT-API-KEY": "k"}, reconnect=no_more(), follow=True)
    assert summary(got) == [("message", "here", "")]
    assert server.requests[1].headers["tt-api-key"] == "k"


async def test_json_and_content_bodies_are_sent_the_same_on_every_attempt() -> None:
    first = Answer([b"id: 1\ndata: a\n\n", 0.05], end="abort")
    with ScriptedServer(first, Answer([b"data: b\n\n"]), STOP) as server:
        await collect(server, method="POST", json={"prompt": "a kite"}, reconnect=no_more(1))
    bodies = [request.body for request in server.requests]
    assert bodies == [b'{"prompt":"a kite"}'] * 3
    assert server.requests[0].headers["content-type"] == "application/json"


async def test_restart_drops_the_connection_and_resumes_at_once() -> None:
    first = Answer([b"id: 1\ndata: a\n\n"], end="hang")
    with ScriptedServer(first, Answer([b"id: 2\ndata: b\n\n"])) as server:
        got: list[Any] = []
        async with (
            httpx2.AsyncClient() as http,
            EventSource(http, "GET", server.url, reconnect=no_more()) as source,
        ):
            async for item in source:
                got.append(item)
                if summary([item]) == [("message", "a", "1")]:
                    source.restart()
    assert summary(got) == [("message", "a", "1"), ("reconnect", "1"), ("message", "b", "2")]
    assert got[1].delay == 0.0
    assert server.requests[1].headers["last-event-id"] == "1"


async def test_restart_interrupts_a_read_in_another_task() -> None:
    first = Answer([b"id: 1\ndata: a\n\n"], end="hang")
    with ScriptedServer(first, Answer([b"id: 2\ndata: b\n\n"])) as server:
        got: list[Any] = []
        first_arrived = anyio.Event()
        async with (
            httpx2.AsyncClient() as http,
            EventSource(http, "GET", server.url, reconnect=no_more()) as source,
            anyio.create_task_group() as tasks,
        ):

            async def read_all() -> None:
                async for item in source:
                    got.append(item)
                    first_arrived.set()

            tasks.start_soon(read_all)
            with anyio.fail_after(5):
                await first_arrived.wait()
            await anyio.sleep(0.1)  # the reader now waits on the hung body
            source.restart()
    assert summary(got) == [("message", "a", "1"), ("reconnect", "1"), ("message", "b", "2")]


async def test_the_deadline_bounds_reads_and_reconnect_sleeps() -> None:
    with ScriptedServer(Answer([b"data: a\n\n"], end="hang")) as server:
        started = anyio.current_time()
        with pytest.raises(APITimeoutError) as info:
            await collect(server, deadline=0.3)
    assert info.value.timeout == "deadline"
    assert anyio.current_time() - started < 3
    policy = ReconnectPolicy(delay=30.0)
    with ScriptedServer(Answer([b"id: 1\ndata: a\n\n"])) as server:
        started = anyio.current_time()
        with pytest.raises(APITimeoutError):
            await collect(server, deadline=0.3, reconnect=policy)
    assert anyio.current_time() - started < 3


# The id cases: replays are skipped only on a resumed body, only up to the resumed id.


async def test_one_id_then_none_gives_every_later_event_that_id() -> None:
    body = [b"id: gen_abc\ndata: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]
    with ScriptedServer(Answer(body)) as server:
        got = await collect(server, reconnect=no_more())
    assert summary(got) == [("message", str(i), "gen_abc") for i in range(3)]


async def test_a_constant_id_on_every_event_is_never_taken_for_a_replay() -> None:
    body = [b"id: job\ndata: %d\n\n" % i for i in range(5)]
    with ScriptedServer(Answer(body)) as server:
        got = await collect(server, reconnect=no_more())
    assert [item.data for item in got] == ["0", "1", "2", "3", "4"]
    assert len(server.requests) == 1


async def test_a_resume_that_replays_two_events_delivers_each_event_once() -> None:
    first = Answer([*(b"id: %d\ndata: e%d\n\n" % (i, i) for i in (1, 2, 3)), 0.05], end="abort")
    replay = Answer([b"id: %d\ndata: e%d\n\n" % (i, i) for i in (2, 3, 4, 5)])
    with ScriptedServer(first, replay) as server:
        got = await collect(server, reconnect=no_more(1))
    events = [item.data for item in got if isinstance(item, ServerSentEvent)]
    assert events == ["e1", "e2", "e3", "e4", "e5"]
    assert server.requests[1].headers["last-event-id"] == "3"


async def test_after_the_replay_a_repeated_id_is_delivered() -> None:
    first = Answer([b"id: 1\ndata: a\n\n", 0.05], end="abort")
    resumed = Answer([b"id: 1\ndata: a\n\n", b"id: 2\ndata: b\n\n", b"id: 2\ndata: c\n\n"])
    with ScriptedServer(first, resumed, STOP) as server:
        got = await collect(server, reconnect=no_more(1))
    assert [item.data for item in got if isinstance(item, ServerSentEvent)] == ["a", "b", "c"]


async def test_memory_stays_flat_over_ten_thousand_events_with_ids() -> None:
    def body(count: int) -> Answer:
        return Answer([b"".join(b"id: %0256d\ndata: x\n\n" % i for i in range(count))])

    async def peak(count: int) -> int:
        with ScriptedServer(body(count)) as server:
            async with (
                httpx2.AsyncClient() as http,
                EventSource(http, "GET", server.url, reconnect=no_more()) as source,
            ):
                gc.collect()
                tracemalloc.start()
                n = 0
                async for _ in source:
                    n += 1
                held = tracemalloc.get_traced_memory()[0]
                tracemalloc.stop()
        assert n == count
        return held

    small, large = await peak(1_000), await peak(10_000)
    assert large < small + 256 * 1024  # not 10,000 ids of 256 bytes kept alive


async def test_a_resume_hook_reconnects_to_another_url_without_a_body() -> None:
    resumes: list[Any] = []

    def answer(request: Any) -> Answer:
        if request.method == "POST":
            return Answer([b"data: 1\n\n", 0.05], end="abort")
        resumes.append(request)
        return Answer([b"data: 2\n\n"]) if len(resumes) == 1 else STOP

    with ScriptedServer(answer) as server:
        got = await collect(
            server,
            method="POST",
            json={"a": 1},
            idempotent=False,
            reconnect=no_more(1),
            resume=lambda: ("GET", server.url + "/resume?after=1"),
        )
    assert [item.data for item in got if isinstance(item, ServerSentEvent)] == ["1", "2"]
    notice = next(item for item in got if isinstance(item, Reconnecting))
    assert not notice.regenerating
    resumed = server.requests[1]
    assert (resumed.method, resumed.path, resumed.body) == ("GET", "/resume?after=1", b"")
    assert "content-type" not in resumed.headers


async def test_a_retry_longer_than_the_budget_fails_at_once() -> None:
    with ScriptedServer(
        Answer([b"retry: 100000000\nid: 1\ndata: a\n\n", 0.05], end="abort")
    ) as server:
        started = anyio.current_time()
        with pytest.raises(APIConnectionError):
            await collect(server, reconnect=ReconnectPolicy(budget=5.0))
    assert anyio.current_time() - started < 3
    assert len(server.requests) == 1


async def test_a_callers_client_auth_never_follows_a_redirect_to_another_origin() -> None:
    with ScriptedServer(Answer([b"data: there\n\n"])) as target:
        moved = Answer(status=307, headers=(("Location", target.url + "/moved"),))
        with ScriptedServer(moved) as origin:
            auth = httpx2.BasicAuth("user", "secret-password")
            async with (
                httpx2.AsyncClient(follow_redirects=True, auth=auth) as http,
                EventSource(http, "GET", origin.url, reconnect=no_more()) as source,
            ):
                got = [item async for item in source]
    assert [item.data for item in got] == ["there"]
    assert origin.requests[0].headers["authorization"].startswith("Basic ")
    assert "authorization" not in target.requests[0].headers


async def test_an_id_echoing_the_key_is_redacted_from_logs_and_reprs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = "sk-test-SECRET123456"
    first = Answer([f"id: Bearer {key}\ndata: a\n\n".encode(), 0.05], end="abort")
    with ScriptedServer(first, Answer([b"data: b\n\n"])) as server:
        async with ttstream.AsyncClient(key, base_url=server.url):  # registers the key
            with caplog.at_level("INFO", logger="ttstream"):
                got = await collect(server, reconnect=no_more(1))
    notice = next(item for item in got if isinstance(item, Reconnecting))
    assert key not in repr(notice)
    assert key not in caplog.text
    assert "reconnecting" in caplog.text


async def test_events_before_an_oversized_event_in_the_same_read_are_delivered() -> None:
    body = b"data: a\n\ndata: b\n\ndata: " + b"x" * 2000 + b"\n\n"
    items: list[Any] = []

    async def read(url: str) -> None:
        async with (
            httpx2.AsyncClient() as http,
            EventSource(http, "GET", url, max_event_bytes=1000) as source,
        ):
            async for item in source:
                items.append(item)

    with ScriptedServer(Answer([body])) as server, pytest.raises(EventTooLargeError):
        await read(server.url)
    assert summary(items) == [("message", "a", ""), ("message", "b", "")]
    items.clear()
    hanging = Answer([body[:-2]], end="hang")  # the error comes before more bytes do
    with (
        ScriptedServer(hanging) as server,
        anyio.fail_after(5),
        pytest.raises(EventTooLargeError),
    ):
        await read(server.url)
    assert summary(items) == [("message", "a", ""), ("message", "b", "")]


async def test_a_resume_url_echoing_the_key_is_redacted_from_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = "resp-key-SECRET123456"  # not shaped like an OpenAI key: redacted as registered
    first = Answer([b"data: a\n\n", 0.05], end="abort")
    with ScriptedServer(first, Answer([b"data: b\n\n"]), STOP) as server:
        async with ttstream.AsyncClient(key, base_url=server.url):  # registers the key
            with caplog.at_level("INFO", logger="ttstream"):
                got = await collect(
                    server,
                    reconnect=no_more(1),
                    resume=lambda: ("GET", f"{server.url}/responses/{key}?stream=true"),
                )
    assert [item.data for item in got if isinstance(item, ServerSentEvent)] == ["a", "b"]
    assert "reconnecting to" in caplog.text
    assert key not in caplog.text


async def test_the_repr_of_a_source_resumed_at_a_url_echoing_the_key_redacts_it() -> None:
    key = "resp-key-SECRET123456"
    first = Answer([b"data: a\n\n", 0.05], end="abort")
    with ScriptedServer(first, Answer([b"data: b\n\n"], end="hang")) as server:
        async with (
            ttstream.AsyncClient(key, base_url=server.url),  # registers the key
            httpx2.AsyncClient() as http,
            EventSource(
                http,
                "GET",
                server.url,
                reconnect=no_more(1),
                resume=lambda: ("GET", f"{server.url}/responses/{key}?stream=true"),
            ) as source,
        ):
            [await source.__anext__() for _ in range(3)]  # a, the notice, b: resumed
            assert "/responses/[REDACTED]?stream=true" in repr(source)
            assert key not in repr(source)


@pytest.mark.parametrize("last_id", ["é", "\u2028", "💥", "\ufffd"])
@pytest.mark.parametrize("transport", ["httpcore", "ttstream"])
async def test_a_non_ascii_id_is_sent_back_as_utf8(last_id: str, transport: str) -> None:
    first = Answer([f"id: {last_id}\ndata: a\n\n".encode(), 0.05], end="abort")
    with ScriptedServer(first, STOP) as server:
        http = ttstream.http_client() if transport == "ttstream" else httpx2.AsyncClient()
        async with (
            http,
            EventSource(http, "GET", server.url, reconnect=no_more(1)) as source,
        ):
            got = [item async for item in source]
    assert summary(got) == [("message", "a", last_id), ("reconnect", last_id)]
    sent = server.requests[1].headers["last-event-id"]  # the server reads latin-1
    assert sent.encode("latin-1").decode() == last_id


@pytest.mark.parametrize("last_id", [" 5", "5 ", "\t5", "a\x01b", "a\x7fb"])
@pytest.mark.parametrize("transport", ["httpcore", "ttstream"])
async def test_an_id_that_is_no_header_value_is_a_protocol_error_at_the_reconnection(
    last_id: str, transport: str
) -> None:
    first = Answer([f"id: {last_id}\ndata: a\n\n".encode(), 0.05], end="abort")
    items: list[Any] = []

    async def read(url: str) -> None:
        http = ttstream.http_client() if transport == "ttstream" else httpx2.AsyncClient()
        async with http, EventSource(http, "GET", url, reconnect=no_more(1)) as source:
            async for item in source:
                items.append(item)

    with (
        ScriptedServer(first, STOP) as server,
        pytest.raises(ProtocolError, match="cannot be sent back as Last-Event-ID"),
    ):
        await read(server.url)
    assert summary(items) == [("message", "a", last_id), ("reconnect", last_id)]
    assert len(server.requests) == 1  # nothing sent with another id than the server's


async def test_a_plain_event_source_decodes_no_image_unless_asked() -> None:
    """``decode_images=True`` decodes images on arrival; with an ``image_shape`` too,
    each image's size is put under it in the table the clients' streams share."""
    line = b'data: {"type":"x","b64_json":"QUJD"}\n\n'
    with ScriptedServer(Answer([line])) as server:
        plain = await collect(server, reconnect=no_more(), image_shape="plain")
        asked = await collect(server, reconnect=no_more(), decode_images=True)
        shaped = await collect(server, reconnect=no_more(), decode_images=True, image_shape="x")
    assert plain[0].decoded is None
    assert asked[0].decoded is not None
    assert shaped[0].decoded is not None
    assert plain[0].data == asked[0].data == shaped[0].data == '{"type":"x","b64_json":"QUJD"}'
    assert (IMAGE_SIZES.get("plain"), IMAGE_SIZES.get("x")) == (0, 3)


async def test_event_source_is_a_thin_driver() -> None:
    # request, response, decoder, reconnection machine: at most 12 attributes (issue 17)
    async with httpx2.AsyncClient() as http:
        source = EventSource(http, "GET", "http://127.0.0.1:9/events")
        assert len(vars(source)) <= 12, sorted(vars(source))


@pytest.mark.parametrize(
    ("url", "option", "named"),
    [
        ("http://[::1", {}, "url"),
        ("http://127.0.0.1/", {"max_event_bytes": True}, "max_event_bytes"),
        ("http://127.0.0.1/", {"max_event_bytes": 0}, "max_event_bytes"),
        ("http://127.0.0.1/", {"max_retries": True}, "max_retries"),
        ("http://127.0.0.1/", {"max_retries": -1}, "max_retries"),
        ("http://127.0.0.1/", {"timeout": 5}, "timeout"),
        ("http://127.0.0.1/", {"timeout": "5"}, "timeout"),
        ("http://127.0.0.1/", {"deadline": 0}, "deadline"),
        ("http://127.0.0.1/", {"decode_images": True, "image_shape": ["x"]}, "image_shape"),
        ("http://127.0.0.1/", {"last_event_id": "a\x01b"}, "last_event_id"),
        ("http://127.0.0.1/", {"last_event_id": " 5"}, "last_event_id"),
    ],
)
async def test_bad_arguments_are_refused_at_construction_naming_the_argument(
    url: str, option: dict[str, Any], named: str
) -> None:
    async with httpx2.AsyncClient() as http:
        with pytest.raises(ttstream.ValidationError) as caught:
            ttstream.EventSource(http, "GET", url, **option)
    assert caught.value.param == named


async def test_a_timeout_of_httpx2_is_taken() -> None:
    async with httpx2.AsyncClient() as http:
        ttstream.EventSource(http, "GET", "http://127.0.0.1/", timeout=httpx2.Timeout(3.0))
