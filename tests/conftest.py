"""Shared test configuration: every async test runs on asyncio and on trio; the emulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpcore2  # noqa: F401 - see below
import pytest

# httpx2 maps httpcore2's exceptions through a table it fills once, with the classes of the
# httpcore2 module loaded then. pytester's in-process runs (tests/project/test_doc_examples.py)
# drop the modules first imported inside them; were httpcore2 among them, a later import
# would make new classes that the table does not know, and httpcore2's own errors would
# escape unmapped. Imported here, it is loaded before any such run and stays.

# The shared helpers assert too: their asserts are rewritten like a test's, and modules that
# import them before naming them in ``pytest_plugins`` (the browser fixture) are accepted.
pytest.register_assert_rewrite("tests.support")

if TYPE_CHECKING:
    from ttstream.emulator import EmulatorServer


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# The suite's emulator is the package's own (``ttstream.testing``, loaded by its pytest11
# entry point): one EmulatorServer(step_delay=0.0) for the session, with the test's
# ``ttstream_faults`` applied and reset after it. A module that needs another emulator
# (a step delay, Azure, a key) defines its own fixture of the same name.


@pytest.fixture(autouse=True)
def _no_image_sizes_of_earlier_tests() -> None:
    """Each test starts with the process-wide table of image sizes empty, so that what an
    earlier test's streams decoded never sizes this one's buffers."""
    from ttstream.events import IMAGE_SIZES

    IMAGE_SIZES.clear()


@pytest.fixture
def emulator(ttstream_emulator: EmulatorServer) -> EmulatorServer:
    """The package's emulator, under the name most test modules use."""
    return ttstream_emulator


@pytest.fixture
def server(ttstream_emulator: EmulatorServer) -> EmulatorServer:
    """The package's emulator, under the other name test modules use."""
    return ttstream_emulator
