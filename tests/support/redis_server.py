"""Helpers of the Redis tests: Debian's redis-server, started and stopped; clients.

The server listens on a Unix socket in a temporary directory (and, when asked, on a free
loopback port), saves nothing to disk, and is stopped (SIGTERM, then SIGKILL after 5 s)
on the way out. No mocks: the tests talk to a real Redis.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import coredis
import httpx2

import ttstream
from ttstream.emulator import EmulatorServer

from .ports import free_port

REDIS_SERVER = shutil.which("redis-server")
MISSING = "redis-server is not installed (Debian: apt-get install redis-server; .ci/run does)"
SMALL = {"model": "gpt-image-2", "size": "64x48", "partial_images": 3}
NAMES = ["partial_image", "partial_image", "partial_image", "completed", "end"]

# coredis 6.9 makes a Connection (with three anyio memory object streams) per attempt
# to connect, and never closes those streams when the connection fails: once Redis is
# gone they are collected later, with a ResourceWarning each. Tests that kill Redis
# carry this mark, and their server's teardown collects them at once, under it.
COREDIS_LEAK = "ignore:Unclosed <MemoryObject:ResourceWarning"


REDIS_CLI = shutil.which("redis-cli")


class RedisServer:
    """``redis-server`` in a subprocess; ``unix_socket`` is its socket's path, ``port``
    its loopback TCP port (0: none). ``settings`` are more ``--name value`` pairs."""

    def __init__(self, *, tcp: bool = False, **settings: str) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError(MISSING)
        self._dir = tempfile.TemporaryDirectory(prefix="ttstream-redis-")
        self.unix_socket = str(Path(self._dir.name) / "redis.sock")
        self.port = free_port() if tcp else 0
        arguments = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "unixsocket": self.unix_socket,
            "unixsocketperm": "700",
            "save": "",
            "appendonly": "no",
            "dir": self._dir.name,
            **settings,
        }
        self.command = [REDIS_SERVER]
        for name, value in arguments.items():
            self.command += [f"--{name.replace('_', '-')}", value]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``unix://...`` (or ``redis://127.0.0.1:<port>`` with ``tcp``), for coredis."""
        return f"redis://127.0.0.1:{self.port}" if self.port else f"unix://{self.unix_socket}"

    def start(self) -> RedisServer:
        """Starts the server; returns once it answers ``PING`` (10 s at most)."""
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not self._pings():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING within 10 s")
            time.sleep(0.01)
        return self

    def _pings(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(1)
                sock.connect(self.unix_socket)
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stops the server (it may already be gone) and removes its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._dir.cleanup()

    def kill(self) -> None:
        """Kills the server at once (SIGKILL), as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class RedisClusterServers:
    """A Redis Cluster of ``masters`` redis-servers (``--cluster-enabled yes``) on free
    loopback ports, made one cluster by ``redis-cli --cluster create``; ``ports`` are
    theirs. Stopped (each server) on the way out."""

    def __init__(self, masters: int = 3) -> None:
        # The cluster bus gets a free port of its own (by default it is the port +
        # 10000, which may be taken or past 65535).
        self.servers = [
            RedisServer(
                tcp=True,
                cluster_enabled="yes",
                cluster_port=str(free_port()),
                cluster_node_timeout="5000",
            )
            for _ in range(masters)
        ]

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    def start(self) -> RedisClusterServers:
        if REDIS_CLI is None:
            raise RuntimeError(MISSING)
        try:
            self._create()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        assert REDIS_CLI is not None
        for server in self.servers:
            server.start()
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        create = [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", "0"]
        subprocess.run(
            [*create, "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        while not all(self._ok(port) for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok in 20 s")
            time.sleep(0.05)

    @staticmethod
    def _ok(port: int) -> bool:
        found = subprocess.run(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), "cluster", "info"],
            capture_output=True,
            timeout=5,
        )
        return b"cluster_state:ok" in found.stdout

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def cluster_client_of(cluster: RedisClusterServers) -> coredis.RedisCluster[bytes]:
    """A coredis cluster client of ``cluster`` (enter it)."""
    return coredis.RedisCluster("127.0.0.1", cluster.ports[0], stream_timeout=5, connect_timeout=5)


def client_of(server: RedisServer, **settings: Any) -> coredis.Redis[bytes]:
    """A coredis client of ``server`` (enter it); commands time out after 5 s."""
    return coredis.Redis(
        unix_socket_path=server.unix_socket, stream_timeout=5, connect_timeout=5, **settings
    )


class Api:
    """A ttstream client of the emulator whose requests carry ``X-Emulator-Fault:
    key=<own>``, so that the emulator's own counter (``stream_stats.requests``) says
    how many generations it started, whichever worker asked."""

    def __init__(self, emulator: EmulatorServer, spec: str) -> None:
        self.emulator = emulator
        self.spec = spec
        self.client = ttstream.AsyncClient(
            "emulator-key",
            base_url=emulator.base_url,
            http_client=httpx2.AsyncClient(headers={"X-Emulator-Fault": spec}),
        )

    @property
    def generations(self) -> int:
        return self.emulator.stream_stats.requests(self.spec)

    def generate(self, prompt: str = "a kite", **params: Any) -> ttstream.ImageStream:
        return self.client.generate(prompt, **{**SMALL, **params})

    async def aclose(self) -> None:
        await self.client._http.aclose()


def api_of(emulator: EmulatorServer) -> Api:
    return Api(emulator, f"key={uuid.uuid4().hex}")
