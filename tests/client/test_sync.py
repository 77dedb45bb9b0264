"""ttstream.Client, the synchronous client, against the emulator over loopback HTTP."""

from __future__ import annotations

import gc
import inspect
import io
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import pytest
from PIL import Image

import ttstream
from tests.support.streams import assert_no_stream_open
from ttstream import Client, Completed, PartialImage, ValidationError
from ttstream.emulator import EmulatorServer

SIZE = "64x48"


def faulty(spec: str) -> httpx2.AsyncClient:
    """An HTTP client asking for faults; it keeps no idle connection (the test, a sync
    caller, has no event loop to close it in)."""
    limits = httpx2.Limits(max_keepalive_connections=0)
    return httpx2.AsyncClient(headers={"X-Emulator-Fault": spec}, limits=limits)


def wait_until_closed(server: EmulatorServer) -> None:
    assert_no_stream_open(server, within=5.0)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_generate_yields_the_same_events_as_the_async_client(
    server: EmulatorServer, backend: str
) -> None:
    with (
        Client("any-key", base_url=server.base_url, backend=backend) as client,
        client.generate("a kite", model="gpt-image-2", size=SIZE, partial_images=2) as stream,
    ):
        events = list(stream)
        assert stream.request_id
    assert [type(e) for e in events] == [PartialImage, PartialImage, Completed]
    for event in events:
        assert Image.open(io.BytesIO(event.image_bytes)).size == (64, 48)
    final = events[-1]
    assert isinstance(final, Completed)
    assert final.usage is not None


@pytest.mark.parametrize("backend", ["curio", "Trio", None])
def test_a_backend_anyio_does_not_have_is_a_validation_error(
    server: EmulatorServer, backend: str
) -> None:
    # anyio's bare LookupError ("No such backend: curio"), or a TypeError for None
    threads = threading.active_count()
    with pytest.raises(ValidationError, match="backend must be 'asyncio' or 'trio'"):
        Client("any-key", base_url=server.base_url, backend=backend)
    assert threading.active_count() == threads  # no loop thread left behind


def test_the_responses_image_tool_runs_the_same_loop(server: EmulatorServer) -> None:
    tool = {"type": "image_generation", "partial_images": 1, "size": "64x48"}
    with (
        Client("any-key", base_url=server.base_url) as client,
        client.responses.stream(model="gpt-5", input="a kite", tools=[tool]) as stream,
    ):
        events = list(stream)
    assert [type(e) for e in events] == [PartialImage, Completed]
    assert events[-1].operation == "response"
    assert stream.response is not None
    assert stream.response.status == "completed"


def test_a_stream_opens_on_first_iteration_and_closes_at_its_end(server: EmulatorServer) -> None:
    with Client("any-key", base_url=server.base_url) as client:
        events = list(client.generate("a kite", model="gpt-image-2", size=SIZE))
        assert [type(e) for e in events] == [Completed]
        wait_until_closed(server)


def test_edit_takes_image_bytes(server: EmulatorServer) -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 64), "red").save(buffer, "PNG")
    with Client("any-key", base_url=server.base_url) as client:
        stream = client.edit("add a hat", images=[buffer.getvalue()], model="gpt-image-2")
        with stream:
            [final] = list(stream)
    assert isinstance(final, Completed)
    assert final.operation == "edit"


def test_url_results_are_fetched(server: EmulatorServer) -> None:
    with Client("any-key", base_url=server.base_url) as client:
        [event] = list(client.generate("a cat", model="dall-e-2", response_format="url"))
        assert isinstance(event, Completed)
        assert event.url is not None
        assert client.fetch_image(event).startswith(b"\x89PNG")


def test_a_bad_parameter_raises_at_the_call() -> None:
    with (
        Client("any-key", base_url="http://127.0.0.1:9/v1") as client,
        pytest.raises(ValidationError, match="size"),
    ):
        client.generate("x", model="gpt-image-1", size="3x3")


def test_no_key_is_a_validation_error_and_leaves_no_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TTAPI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    before = set(threading.enumerate())
    with pytest.raises(ValidationError, match="api_key"):
        Client()
    assert set(threading.enumerate()) <= before


def test_errors_are_the_async_clients(server: EmulatorServer) -> None:
    http = faulty("end-early")
    with Client("any-key", base_url=server.base_url, http_client=http) as client:
        stream = client.generate("a kite", model="gpt-image-2", size=SIZE, partial_images=1)
        with pytest.raises(ttstream.IncompleteStreamError) as info, stream:
            list(stream)
    assert info.value.last_partial is not None


def test_keyboard_interrupt_in_the_loop_body_closes_everything(server: EmulatorServer) -> None:
    before = set(threading.enumerate())
    with (  # noqa: PT012 - the interrupt comes from the loop body
        pytest.raises(KeyboardInterrupt),
        Client("any-key", base_url=server.base_url) as client,
        client.generate("a kite", model="gpt-image-2", size=SIZE, partial_images=3) as stream,
    ):
        for _event in stream:
            raise KeyboardInterrupt
    wait_until_closed(server)
    assert set(threading.enumerate()) <= before  # the loop thread has stopped


def test_ctrl_c_while_waiting_for_an_event_cancels_the_wait_and_closes(
    server: EmulatorServer,
) -> None:
    """The stream stalls for 30 s after its first event; SIGINT arrives in the main
    thread while it waits in ``next()``: the wait ends at once, the response closes."""
    http = faulty("stall=30")
    before = set(threading.enumerate())
    timer = threading.Timer(
        0.3, signal.pthread_kill, args=(threading.main_thread().ident, signal.SIGINT)
    )
    started = time.monotonic()
    with (  # noqa: PT012
        pytest.raises(KeyboardInterrupt),
        Client("any-key", base_url=server.base_url, http_client=http) as client,
        client.generate("a kite", model="gpt-image-2", size=SIZE, partial_images=2) as stream,
    ):
        next(stream)
        timer.start()
        next(stream)  # blocked in the stall when the signal comes
    assert time.monotonic() - started < 5
    wait_until_closed(server)
    assert set(threading.enumerate()) <= before


def test_a_script_that_never_closes_its_client_still_exits(
    server: EmulatorServer, tmp_path: Path
) -> None:
    script = tmp_path / "forgetful.py"
    script.write_text(
        "import sys, ttstream\n"
        "client = ttstream.Client('any-key', base_url=sys.argv[1])\n"
        "events = list(client.generate('x', model='gpt-image-2', size='64x48'))\n"
        "print(type(events[-1]).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script), server.base_url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "Completed\n"), result.stderr


def test_a_client_garbage_collected_stops_its_loop_thread(server: EmulatorServer) -> None:
    before = set(threading.enumerate())
    client = Client("any-key", base_url=server.base_url)
    list(client.generate("x", model="gpt-image-2", size=SIZE))
    del client
    gc.collect()
    assert set(threading.enumerate()) <= before


TOOL = {"type": "image_generation", "partial_images": 1, "size": "64x48"}


def test_responses_of_a_client_kept_nowhere_else(server: EmulatorServer) -> None:
    before = set(threading.enumerate())
    stream = Client("any-key", base_url=server.base_url).responses.stream(
        model="gpt-5", input="a kite", tools=[TOOL]
    )
    gc.collect()  # the stream keeps its client alive
    with stream:
        events = list(stream)
    assert [type(e) for e in events] == [PartialImage, Completed]
    assert stream.response_id is not None
    assert stream.last_sequence_number is not None
    del stream
    gc.collect()  # then the client is closed with its last user
    assert set(threading.enumerate()) <= before


def test_responses_kept_after_their_client_is_gone(server: EmulatorServer) -> None:
    before = set(threading.enumerate())
    client = Client("any-key", base_url=server.base_url)
    responses = client.responses
    del client
    gc.collect()
    with responses.stream(model="gpt-5", input="kite", tools=[TOOL], background=True) as stream:
        [*_, final] = list(stream)
    assert isinstance(final, Completed)
    with responses.resume(stream.response_id or "", starting_after=-1) as again:
        assert isinstance(list(again)[-1], Completed)
    del responses, stream, again
    gc.collect()
    assert set(threading.enumerate()) <= before


def test_the_sync_stream_has_what_the_async_stream_has(server: EmulatorServer) -> None:
    instance = ttstream.AsyncClient("k").responses.stream(model="gpt-5", input="x")
    asynchronous = {n for n in dir(instance) if not n.startswith("_")}
    # aclose is close; deadline_at is a time on the loop thread's clock, of no use here
    assert asynchronous - {"aclose", "deadline_at"} <= set(dir(ttstream.SyncImageStream))
    with Client("any-key", base_url=server.base_url) as client:
        stream = client.generate("a kite", size=SIZE, partial_images=2)
        assert (stream.started, stream.decode_images, stream.last_partial) == (False, None, None)
        stream.decode_images = False
        with stream:
            events = list(stream)
        assert stream.started
        assert stream.last_partial is events[1]
        assert (stream.response, stream.response_id, stream.last_sequence_number) == (None,) * 3


def test_fetch_image_takes_a_deadline_and_deprecates_timeout(server: EmulatorServer) -> None:
    with Client("any-key", base_url=server.base_url) as client:
        [event] = list(client.generate("a cat", model="dall-e-2", response_format="url"))
        assert isinstance(event, Completed)
        assert client.fetch_image(event, deadline=30).startswith(b"\x89PNG")
        with pytest.warns(DeprecationWarning, match="deadline=") as caught:
            assert client.fetch_image(event, timeout=30).startswith(b"\x89PNG")
        assert caught[0].filename == __file__  # the warning points at the caller
        with pytest.raises(ValidationError, match="deadline"):
            client.fetch_image(event, deadline=-1)


def test_the_client_takes_the_async_clients_arguments() -> None:
    asynchronous = inspect.signature(ttstream.AsyncClient).parameters
    synchronous = inspect.signature(Client).parameters
    assert list(asynchronous) == list(synchronous)[: len(asynchronous)]
    for name, parameter in asynchronous.items():
        assert synchronous[name].default is parameter.default, name
    assert all(p.kind is not p.VAR_KEYWORD for p in synchronous.values())
    responses = inspect.signature(ttstream.SyncResponses.resume).parameters
    assert all(p.kind is not p.VAR_KEYWORD for p in responses.values())


def test_a_client_the_collector_frees_in_its_own_loop_thread_closes_without_hanging(
    server: EmulatorServer,
) -> None:
    # The client's finalizer waited on its loop thread for aclose(); run by the garbage
    # collector in that very thread (which allocates, so it collects too), it waited
    # for itself and the loop thread hung.
    client = Client("k", base_url=server.base_url)
    client.cycle = client  # type: ignore[attr-defined]  # only the collector frees it
    loop = client._loop
    del client

    async def collect() -> None:
        gc.collect()  # in the loop thread, as an allocation there would

    done = threading.Event()

    def run() -> None:
        loop.call(collect)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(10), "the finalizer waited for its own loop thread"
    deadline = time.monotonic() + 10
    while not loop._stopped and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop._stopped  # closed all the same, from another thread
