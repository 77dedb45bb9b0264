"""Shared test configuration: every async test runs on asyncio and on trio."""

from __future__ import annotations

import httpcore2  # noqa: F401 - see below
import pytest

# httpx2 maps httpcore2's exceptions through a table it fills once, with the classes of the
# httpcore2 module loaded then. pytester's in-process runs (tests/test_doc_examples.py)
# drop the modules first imported inside them; were httpcore2 among them, a later import
# would make new classes that the table does not know, and httpcore2's own errors would
# escape unmapped. Imported here, it is loaded before any such run and stays.


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
