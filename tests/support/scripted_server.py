"""A test helper: an HTTP/1.1 server on 127.0.0.1 whose every byte is scripted.

Each request gets the next :class:`Answer` (or the last one again); the server records
each request (method, path, headers, body). A body is a list of parts: ``bytes`` (sent
as one HTTP chunk), a ``float`` (a pause in seconds); it ends cleanly, by aborting the
connection mid-body (httpx then raises ``RemoteProtocolError``), or by hanging until the
server stops. It runs in a thread, so it serves tests on asyncio and on trio alike.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Sequence
from typing import BinaryIO, Literal

import attrs

Part = bytes | float


@attrs.frozen
class Answer:
    body: Sequence[Part] = ()
    status: int = 200
    headers: Sequence[tuple[str, str]] = (("Content-Type", "text/event-stream"),)
    end: Literal["clean", "abort", "hang"] = "clean"


@attrs.frozen
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class ScriptedServer:
    """``with ScriptedServer(Answer(...), ...) as server: server.url``."""

    def __init__(self, *answers: Answer | Callable[[Request], Answer]) -> None:
        self.answers = list(answers)
        self.requests: list[Request] = []
        self._stop = threading.Event()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                owner._serve(self.connection, self.rfile)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, connection: socket.socket, reader: BinaryIO) -> None:
        while True:
            line = reader.readline()
            if not line:
                return
            method, path, _ = line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = header.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = reader.read(int(headers.get("content-length", "0")))
            request = Request(method, path, headers, body)
            self.requests.append(request)
            script = self.answers[min(len(self.requests), len(self.answers)) - 1]
            answer = script(request) if callable(script) else script
            if not self._answer(connection, answer):
                return

    def _answer(self, connection: socket.socket, answer: Answer) -> bool:
        """Sends ``answer``; ``False`` when the connection is to be dropped."""
        head = [f"HTTP/1.1 {answer.status} Scripted"]
        head += [f"{name}: {value}" for name, value in answer.headers]
        chunked = answer.status != 204
        if chunked:
            head.append("Transfer-Encoding: chunked")
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        try:
            for part in answer.body:
                if isinstance(part, float):
                    if self._stop.wait(part):
                        return False
                elif part:
                    connection.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            if answer.end == "abort":
                connection.shutdown(socket.SHUT_RDWR)
                return False
            if answer.end == "hang":
                self._stop.wait(30)
                return False
            if chunked:
                connection.sendall(b"0\r\n\r\n")
        except OSError:
            return False
        return True
