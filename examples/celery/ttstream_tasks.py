"""ttstream jobs in Celery workers, with a Redis broker: each image paid for once.

    celery -A ttstream_tasks worker --pool=solo        # in this directory, one or more
    python -c "import ttstream_tasks as t; print(t.generate.delay('kite', 'a red kite').get())"

A task generates one image with the synchronous ``ttstream.Client`` and writes its final
image into ``TTSTREAM_OUT`` (``<key>-final.png``, never over another file). Celery
delivers a task at least once: with ``acks_late`` a task whose worker died is delivered
again, and a slow one can be delivered twice. ``ttstream.redis.start_once`` makes that
safe: the job's claim in Redis lets one worker start the (billed) generation; a
redelivered task finds the claim ``done`` and returns the same file without a request,
or finds it still ``running`` and retries later. A worker killed mid-generation stops
renewing its claim, which expires after ``TTSTREAM_CLAIM_TTL`` seconds; the redelivered
task then starts the generation again (that one image is paid twice: it never finished).

Previews go to a Redis stream per job (``RedisStreamSink``), so any web worker can serve
them to browsers with ``ttstream.redis.RedisRelay`` (docs/redis.md).

Settings (environment): ``CELERY_BROKER_URL`` (default ``redis://127.0.0.1:6379/0``; the
same Redis holds the claims, the preview streams and the results), ``TTSTREAM_OUT``
(default ``ttstream-out``), ``TTSTREAM_CLAIM_TTL`` (seconds, default 10),
``TTSTREAM_VISIBILITY_TIMEOUT`` (seconds before Redis hands an unacknowledged task to
another worker, default 3600; keep it above your longest generation), and the key as for
``ttstream.Client()`` (``TTAPI_API_KEY`` or ``OPENAI_API_KEY``, with ``TTAPI_BASE_URL``).
Needs the ``redis`` extra and ``celery[redis]``. docs/batch.md, "Across machines".
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import coredis
from celery import Celery, Task

import ttstream
from ttstream.redis import RedisStreamSink, claim_key, start_once
from ttstream.sinks import FileSink

REDIS_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
OUT = Path(os.environ.get("TTSTREAM_OUT", "ttstream-out"))
CLAIM_TTL = float(os.environ.get("TTSTREAM_CLAIM_TTL", "10"))
PREFIX = "ttstream:job:"  # the preview stream of a job; its claim is "<stream>:claim"

app = Celery("ttstream_tasks", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_acks_late=True,  # a task is acknowledged when it ends: a dead worker's comes back
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("TTSTREAM_VISIBILITY_TIMEOUT", "3600")),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    result_expires=3600,
)


def final_path(key: str) -> Path | None:
    """The final image of job ``key`` in ``OUT``, once written (the key taken as it is:
    ``sku[1]`` or ``kite*`` are names, not patterns)."""
    found = sorted(OUT.glob(f"{glob.escape(key)}-final.*"))
    return found[0] if found else None


def _generate(key: str, prompt: str, params: dict[str, Any], sink: RedisStreamSink) -> None:
    """In a worker thread: the generation with the sync client; every event goes to the
    job's Redis stream and the final image to ``OUT``, through the task's event loop."""
    files = FileSink(OUT, stem=key)
    with ttstream.Client() as client, client.generate(prompt, **params) as stream:
        for event in stream:
            anyio.from_thread.check_cancelled()  # the claim was lost: stop, write nothing
            anyio.from_thread.run(sink.send, event)
            if isinstance(event, ttstream.Completed):
                anyio.from_thread.run(files.send, event)
    anyio.from_thread.run(sink.aclose)


async def _run_once(key: str, prompt: str, params: dict[str, Any]) -> str:
    """``"ran"``, ``"done"`` (another delivery finished it) or ``"running"``."""
    job = PREFIX + key
    async with coredis.Redis.from_url(REDIS_URL) as redis:
        sink = RedisStreamSink(redis, job)

        async def start() -> None:
            await anyio.to_thread.run_sync(_generate, key, prompt, params, sink)

        if await start_once(redis, job, start, claim_ttl=CLAIM_TTL):
            return "ran"
        claim = await redis.get(claim_key(job))
    return "done" if claim is not None and claim.startswith(b"done:") else "running"


@app.task(bind=True, name="ttstream_tasks.generate", max_retries=None)
def generate(self: Task, key: str, prompt: str, **params: Any) -> str:
    """Generates the image of job ``key`` once, however often the task is delivered;
    returns the path of its final image."""
    state = anyio.run(_run_once, key, prompt, params)
    if state == "running":  # another worker has it, or had it and died: look again later
        raise self.retry(countdown=CLAIM_TTL)
    path = final_path(key)
    if path is None:
        raise RuntimeError(f"job {key!r} ended without a final image in {OUT}")
    return str(path)
