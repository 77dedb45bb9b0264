"""The pytest plugin ttstream.testing, used by test files of its own (pytester).

The plugin is found through its ``pytest11`` entry point: no run below names it. Each
run is a subprocess: pytester's in-process runs restore ``sys.modules`` afterwards, so a
second in-process run would import httpx2 anew while ttstream's transport still maps the
first import's exception classes."""

from __future__ import annotations

import pytest

# Loaded here, before pytester's in-process runs snapshot sys.modules and unload what each
# run imported: ``import ttstream`` loads the client lazily, and a client module unloaded
# between runs would leave its submodules behind as stale attributes of the package.
import ttstream._sync  # noqa: F401
from tests.support.paths import ROOT

pytest_plugins = ["pytester"]

EXAMPLE = ROOT / "examples" / "testing" / "test_thumbnails.py"

HEADER = """
import httpx2
import pytest
import ttstream

pytestmark = pytest.mark.anyio

@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param

async def generate(client):
    async with client.generate("a kite", model="gpt-image-2", size="64x48") as stream:
        return [event async for event in stream]
"""


def test_the_example_in_examples_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_example=EXAMPLE.read_text())
    result = pytester.runpytest_subprocess("--strict-markers")
    outcomes = result.parseoutcomes()
    assert result.ret == 0
    assert set(outcomes) == {"passed"}
    assert outcomes["passed"] >= 14  # every test of the example, on asyncio and trio


def test_faults_apply_to_one_test_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HEADER
        + """
@pytest.mark.ttstream_faults("status=400")
async def test_faulty(ttstream_client, ttstream_emulator):
    before = ttstream_emulator.stream_stats.requests("status=400")
    with pytest.raises(ttstream.APIStatusError) as info:
        await generate(ttstream_client)
    assert info.value.status_code == 400
    assert ttstream_emulator.stream_stats.requests("status=400") - before == 1

async def test_after_it_all_is_well(ttstream_client, ttstream_emulator):
    [event] = await generate(ttstream_client)
    assert isinstance(event, ttstream.Completed)
    await ttstream_emulator.wait_closed(timeout=10)
    assert ttstream_emulator.stream_stats.open_streams == 0

@pytest.mark.parametrize("ttstream_faults", ["end-early", "error-nested"])
async def test_parametrized(ttstream_client, ttstream_faults):
    with pytest.raises((ttstream.IncompleteStreamError, ttstream.StreamError)):
        await generate(ttstream_client)

@pytest.mark.ttstream_faults("status=400")
async def test_a_request_that_names_its_fault_keeps_it(ttstream_emulator):
    http = httpx2.AsyncClient(headers={"X-Emulator-Fault": "end-early"})
    async with http:
        client = ttstream.AsyncClient("k", base_url=ttstream_emulator.base_url, http_client=http)
        with pytest.raises(ttstream.IncompleteStreamError):
            await generate(client)

@pytest.mark.ttstream_faults("end-early")
async def test_env_reaches_code_that_builds_its_own_client(ttstream_env):
    async with ttstream.AsyncClient() as client:
        assert client.base_url == ttstream_env
        with pytest.raises(ttstream.IncompleteStreamError):
            await generate(client)
"""
    )
    result = pytester.runpytest_subprocess("--strict-markers")
    result.assert_outcomes(passed=12)  # six tests on two backends


def test_a_marker_without_a_spec_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.ttstream_faults()
def test_x(ttstream_emulator):
    pass
"""
    )
    result = pytester.runpytest_subprocess()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*ttstream_faults takes one fault spec string*"])


WAITS = (
    HEADER
    + """
async def read_to_the_final(client, **params):
    async with client.generate("a kite", model="gpt-image-2", size="64x48", **params) as s:
        async for event in s:
            if isinstance(event, ttstream.Completed):
                return event  # leaves the stream at once: the emulator closes it later

@pytest.mark.parametrize("round", range(10))
async def test_every_stream_is_closed_once_waited_for(ttstream_client, ttstream_emulator, round):
    for _ in range(3):
        await read_to_the_final(ttstream_client, partial_images=2)
    await ttstream_emulator.wait_closed(timeout=10)
    stats = ttstream_emulator.stream_stats
    assert (stats.open_streams, stats.requests_in_flight) == (0, 0)

@pytest.mark.ttstream_faults("drop-between-events")
async def test_a_dropped_stream_is_closed_once_waited_for(ttstream_client, ttstream_emulator):
    with pytest.raises(ttstream.IncompleteStreamError):
        await read_to_the_final(ttstream_client, partial_images=1)
    await ttstream_emulator.wait_closed(timeout=10)
    assert ttstream_emulator.stream_stats.open_streams == 0

def test_synchronous_code_waits_with_stream_stats(ttstream_emulator):
    with ttstream.Client("k", base_url=ttstream_emulator.base_url) as client:
        with client.generate("a kite", model="gpt-image-2", size="64x48") as stream:
            for event in stream:
                if isinstance(event, ttstream.Completed):
                    break
    ttstream_emulator.stream_stats.wait_closed(timeout=10)
    assert ttstream_emulator.stream_stats.open_streams == 0
"""
)


def test_wait_closed_makes_open_streams_exact(pytester: pytest.Pytester) -> None:
    """Issue 17: reading ``open_streams`` right after a stream raced the emulator's
    thread; after ``wait_closed`` it is 0 every time (30 streams, both backends)."""
    pytester.makepyfile(WAITS)
    result = pytester.runpytest_subprocess("--strict-markers")
    result.assert_outcomes(passed=23)


RETRIES = (
    HEADER
    + """
@pytest.mark.ttstream_faults("status=500")
async def test_the_client_does_not_retry_by_default(ttstream_client, ttstream_emulator):
    before = ttstream_emulator.stream_stats.requests("status=500")
    with pytest.raises(ttstream.APIStatusError) as info:
        await generate(ttstream_client)
    assert info.value.status_code == 500
    assert ttstream_emulator.stream_stats.requests("status=500") - before == 1

@pytest.mark.parametrize("ttstream_max_retries", [2])
async def test_a_test_can_ask_for_retries(ttstream_client, ttstream_emulator, anyio_backend):
    spec = f"status=429;retry-after-ms=0;times=1;key={anyio_backend}"
    ttstream_emulator.default_fault = spec  # what the marker does, with a key per backend
    [event] = await generate(ttstream_client)
    assert isinstance(event, ttstream.Completed)
    assert ttstream_emulator.stream_stats.requests(spec) == 2  # the 429, then its retry
"""
)


def test_the_client_retries_only_when_the_test_asks(pytester: pytest.Pytester) -> None:
    """Issue 21: the plugin's client retried a 500 twice with real backoff (over a
    second per test); now it makes one request, and a test that wants retries says so."""
    pytester.makepyfile(RETRIES)
    result = pytester.runpytest_subprocess("--strict-markers")
    result.assert_outcomes(passed=4)


def test_a_fault_spec_that_cannot_be_read_fails_at_setup(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.ttstream_faults("drop-sometimes")
def test_x(ttstream_emulator):
    pass
"""
    )
    result = pytester.runpytest_subprocess()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*ttstream_faults 'drop-sometimes': unknown fault*"])
