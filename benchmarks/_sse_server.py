"""The server of the loopback benchmarks: every POST is answered at once with the same
SSE body, with no delay, as fast as the client reads.

``python benchmarks/_sse_server.py --image-bytes N`` prints its port on the first line of
stdout and serves until terminated. It is a bare asyncio server rather than an ASGI app,
so that the server does as little as possible per byte: one ``sock_sendall`` per event.
It feeds a bare socket reader about 1.8 GB/s here, several times what any client reads.
It speaks HTTP/1.1 with keep-alive and ``Transfer-Encoding: chunked``, one HTTP chunk per
event, as a streaming API does.

Running in its own process keeps the server's work off the client's interpreter (and
its GIL): the client is what is measured, and the second core runs the server. For each
event it notes when the event's last byte was handed to the kernel (``sock_sendall``
returns only then), on the system-wide ``CLOCK_MONOTONIC`` that ``time.clock_gettime``
reads in every process, keyed by the request's ``user`` and the event's index.
``GET /marks`` answers those notes as JSON and forgets them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time

from _workload import four_events

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\n"
    b"x-request-id: bench\r\ntransfer-encoding: chunked\r\n\r\n"
)


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class Handler:
    def __init__(self, body: bytes, event_ends: list[int]) -> None:
        starts = [0, *event_ends[:-1]]
        self.chunks = [
            b"%x\r\n%s\r\n" % (end - start, body[start:end])
            for start, end in zip(starts, event_ends, strict=True)
        ]
        self.marks: list[tuple[str, int, float]] = []

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        buffer = b""

        async def read_until(separator: bytes) -> bytes:
            nonlocal buffer
            while separator not in buffer:
                more = await loop.sock_recv(sock, 65536)
                if not more:
                    raise ConnectionError
                buffer += more
            head, _, buffer = buffer.partition(separator)
            return head

        async def read_exactly(size: int) -> bytes:
            nonlocal buffer
            while len(buffer) < size:
                more = await loop.sock_recv(sock, 65536)
                if not more:
                    raise ConnectionError
                buffer += more
            data, buffer = buffer[:size], buffer[size:]
            return data

        try:
            while True:
                lines = (await read_until(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                request = await read_exactly(length)
                if method == "GET" and path == "/marks":
                    answer = json.dumps(self.marks).encode()
                    self.marks.clear()
                    await loop.sock_sendall(
                        sock,
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%s" % (len(answer), answer),
                    )
                    continue
                tag = str(json.loads(request or b"{}").get("user") or "")
                await loop.sock_sendall(sock, HEAD)
                for index, chunk in enumerate(self.chunks):
                    await loop.sock_sendall(sock, chunk)  # returns once the kernel has it all
                    if tag:
                        self.marks.append((tag, index, now()))
                await loop.sock_sendall(sock, b"0\r\n\r\n")
        except ConnectionError:
            pass
        finally:
            sock.close()


async def serve(image_bytes: int) -> None:
    stream = four_events(image_bytes)
    handler = Handler(stream.body, stream.event_ends)
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    tasks = set()
    while True:
        sock, _ = await loop.sock_accept(listener)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = asyncio.create_task(handler.serve(sock))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-bytes", type=int, required=True)
    asyncio.run(serve(parser.parse_args().image_bytes))


if __name__ == "__main__":
    main()
