"""Shared fixtures of the Redis tests: a real redis-server, coredis clients (the emulator
is the suite's, from tests/conftest.py).

A test module loads them with ``pytest_plugins = ["tests.support.redis_fixtures"]``;
every test that asks for a server is skipped, with the reason, when redis-server is absent.
"""

from __future__ import annotations

import gc
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator

import coredis
import pytest

from .redis_server import (
    MISSING,
    REDIS_CLI,
    REDIS_SERVER,
    RedisClusterServers,
    RedisServer,
    client_of,
)


def needs_redis() -> None:
    if REDIS_SERVER is None:
        pytest.skip(MISSING)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server per test module; tests keep apart by using keys of their own.
    Small stream nodes make ``MAXLEN ~`` trim at a few entries."""
    needs_redis()
    with RedisServer(stream_node_max_entries="4") as server:
        yield server


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A real Redis Cluster: three masters on loopback, one module's worth."""
    needs_redis()
    if REDIS_CLI is None:
        pytest.skip(MISSING)
    with RedisClusterServers(3) as cluster:
        yield cluster


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, which the test may kill (mark the test with
    ``pytest.mark.filterwarnings(COREDIS_LEAK)``)."""
    needs_redis()
    with RedisServer(stream_node_max_entries="4") as server:
        yield server
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unclosed <MemoryObject", ResourceWarning)
        gc.collect()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[coredis.Redis[bytes]]:
    async with client_of(redis_server) as client:
        yield client


@pytest.fixture
def key() -> str:
    """A stream key of the test's own."""
    return f"test:{uuid.uuid4().hex}"
