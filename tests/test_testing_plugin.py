"""The pytest plugin ttstream.testing, used by test files of its own (pytester).

The plugin is found through its ``pytest11`` entry point: no run below names it."""

from __future__ import annotations

from pathlib import Path

import pytest

# Loaded here, before pytester's in-process runs snapshot sys.modules and unload what each
# run imported: ``import ttstream`` loads the client lazily, and a client module unloaded
# between runs would leave its submodules behind as stale attributes of the package.
import ttstream._sync  # noqa: F401

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).parent.parent / "examples" / "testing" / "test_thumbnails.py"

HEADER = """
import httpx2
import pytest
import ttstream

pytestmark = pytest.mark.anyio

@pytest.fixture
def anyio_backend():
    return "asyncio"

async def generate(client):
    async with client.generate("a kite", model="gpt-image-2", size="64x48") as stream:
        return [event async for event in stream]
"""


def test_the_example_in_examples_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_example=EXAMPLE.read_text())
    result = pytester.runpytest("--strict-markers")
    outcomes = result.parseoutcomes()
    assert result.ret == 0
    assert set(outcomes) == {"passed"}
    assert outcomes["passed"] >= 5  # every test of the example, on each anyio backend


def test_faults_apply_to_one_test_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HEADER
        + """
@pytest.mark.ttstream_faults("status=400")
async def test_faulty(ttstream_client, ttstream_emulator):
    with pytest.raises(ttstream.APIStatusError) as info:
        await generate(ttstream_client)
    assert info.value.status_code == 400
    assert ttstream_emulator.stream_stats.requests("status=400") == 1

async def test_after_it_all_is_well(ttstream_client, ttstream_emulator):
    [event] = await generate(ttstream_client)
    assert isinstance(event, ttstream.Completed)
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
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=6)


def test_a_marker_without_a_spec_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.ttstream_faults()
def test_x(ttstream_emulator):
    pass
"""
    )
    result = pytester.runpytest()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*ttstream_faults takes one fault spec string*"])
