"""client.batch(): concurrency, pacing, 429 pauses, failures, the journal, cancellation;
against the emulator over loopback."""

from __future__ import annotations

import base64
import decimal
import errno
import hashlib
import io
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from PIL import Image

import ttstream
from tests.support.scripted_server import Answer, Request, ScriptedServer
from ttstream.client import DEFAULT_TIMEOUT
from ttstream.emulator import EmulatorServer
from ttstream.testing import EMULATOR_KEY

pytestmark = pytest.mark.anyio


def _client(
    server: EmulatorServer, fault: str | None = None, **options: object
) -> ttstream.AsyncClient:
    """A client of the emulator whose requests all carry ``fault`` (when given)."""

    async def add_fault(request: httpx2.Request) -> None:
        if fault is not None:
            request.headers["X-Emulator-Fault"] = fault

    http = httpx2.AsyncClient(
        timeout=DEFAULT_TIMEOUT,
        limits=httpx2.Limits(max_keepalive_connections=0),
        event_hooks={"request": [add_fault]},
    )
    return ttstream.AsyncClient(
        EMULATOR_KEY,
        base_url=server.base_url,
        http_client=http,
        **options,  # type: ignore[arg-type]
    )


async def _collect(batch: ttstream.Batch) -> dict[str, ttstream.JobResult]:
    return {result.key: result async for result in batch}


async def test_every_job_has_a_result_with_its_images(ttstream_emulator: EmulatorServer) -> None:
    before = ttstream_emulator.stream_stats.generations
    async with _client(ttstream_emulator) as client, client.batch(concurrency=3) as batch:
        for i in range(5):
            batch.add(f"a lighthouse {i}", partial_images=1)
        batch.add("two boats", key="boats", n=2)
        results = await _collect(batch)
    assert sorted(results) == ["boats", "job-1", "job-2", "job-3", "job-4", "job-5"]
    assert all(result.ok for result in results.values())
    assert len(results["boats"].events) == 2
    assert all(isinstance(e, ttstream.Completed) for e in results["job-1"].events)
    assert results["job-1"].attempts == 1
    assert results["job-1"].usage is not None
    assert results["job-1"].usage["output_tokens"] > 0
    assert results["job-1"].first_preview is not None
    assert ttstream_emulator.stream_stats.generations - before == 7
    assert batch.done == 6
    assert batch.images == 7
    assert batch.failed == 0


async def test_concurrency_is_never_exceeded(ttstream_emulator: EmulatorServer) -> None:
    most = 0

    async with _client(ttstream_emulator) as client, client.batch(concurrency=2) as batch:
        for i in range(8):
            batch.add(f"p{i}", partial_images=2)
        async for _ in batch:
            most = max(most, len(batch.running()))
        most = max(most, ttstream_emulator.stream_stats.open_streams)
    assert 1 <= most <= 2


async def test_a_failed_job_does_not_fail_the_batch(ttstream_emulator: EmulatorServer) -> None:
    async with _client(ttstream_emulator) as client, client.batch() as batch:
        batch.add("fine", key="fine")
        batch.add("bad", key="bad", deadline=0.001)  # passes at once
        results = await _collect(batch)
    assert results["fine"].ok
    assert not results["bad"].ok
    assert isinstance(results["bad"].error, ttstream.APITimeoutError)
    assert (batch.done, batch.failed) == (1, 1)


async def test_a_bad_parameter_is_refused_when_added(ttstream_emulator: EmulatorServer) -> None:
    async with _client(ttstream_emulator) as client, client.batch() as batch:
        with pytest.raises(ttstream.ValidationError):
            batch.add("x", quality="ultra-mega")
        batch.add("x", key="k")
        with pytest.raises(ttstream.ValidationError, match="not used by another job"):
            batch.add("y", key="k")
        with pytest.raises(ttstream.ValidationError, match="key"):
            batch.add("y", key="../escape")
        assert [r.key async for r in batch] == ["k"]


def _png(path: Path) -> Path:
    picture = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(picture, "PNG")
    path.write_bytes(picture.getvalue())
    return path


async def test_an_edit_of_a_file_that_cannot_be_read_fails_when_it_starts(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.png"
    async with _client(ttstream_emulator) as client, client.batch() as batch:
        batch.edit("x", images=[missing], key="missing")
        batch.edit("x", images=[b"image"], mask=str(tmp_path), key="directory")
        batch.edit("x", images=_png(tmp_path / "in.png"), key="fine")
        results = await _collect(batch)
    assert results["fine"].ok
    for key, param, path in (("missing", "images", missing), ("directory", "mask", tmp_path)):
        error = results[key].error
        assert isinstance(error, ttstream.ValidationError)
        assert (error.param, results[key].attempts) == (param, 0)  # no request sent
        assert str(path) in str(error)
    assert (batch.done, batch.failed) == (1, 2)


async def test_a_rerun_does_not_need_the_files_of_an_edit_done_in_the_journal(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    picture = _png(tmp_path / "in.png")
    for run in range(2):
        async with _client(ttstream_emulator) as client, client.batch(journal=journal) as batch:
            batch.edit("make it blue", images=[picture], key="blue")
            (result,) = [r async for r in batch]
        assert result.ok
        assert result.from_journal == (run == 1)
        picture.unlink(missing_ok=True)  # gone before the rerun


async def test_options_are_checked() -> None:
    client = ttstream.AsyncClient(EMULATOR_KEY, base_url="http://127.0.0.1:9/v1")
    async with client:
        for bad in ({"concurrency": 0}, {"images_per_minute": -1}, {"requests_per_minute": "x"}):
            with pytest.raises(ttstream.ValidationError):
                client.batch(**bad)
        # A path that is none was a bare TypeError from os.fspath / pathlib.
        for name, value in (("out", 5), ("journal", 5), ("out", b"images")):
            with pytest.raises(ttstream.ValidationError) as caught:
                client.batch(**{name: value})
            assert caught.value.param == name


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"images": None}, "a path, bytes"),
        ({"images": 5}, "a path, bytes"),
        ({"images": [b"\x89PNG", {"image_url": "u"}]}, "all files or all references"),
        ({"images": {"image_url": "u", "file_id": "f"}}, "exactly one of"),
        ({"images": b"\x89PNG", "mask": 7}, "mask=7"),
    ],
)
async def test_an_edit_whose_inputs_are_of_no_kind_is_refused_when_added(
    options: dict[str, Any], match: str
) -> None:
    # They were added, and each failed only when it started: "parameters are checked
    # when the job is added" (docs/batch.md); what needs no file read can be.
    client = ttstream.AsyncClient(EMULATOR_KEY, base_url="http://127.0.0.1:9/v1")
    async with client:
        batch = client.batch()
        with pytest.raises(ttstream.ValidationError, match=match):
            batch.edit("a hat", key="hat", **options)
        with pytest.raises(TypeError, match="images"):  # was a KeyError
            batch.edit("a hat", key="hat")  # type: ignore[call-arg]
        assert batch.pending == 0
        assert batch.edit("a hat", key="hat", images=b"\x89PNG") == "hat"  # the key is free


async def test_a_429_pauses_the_batch_and_lowers_concurrency(
    ttstream_emulator: EmulatorServer,
) -> None:
    spec = f"status=429;retry-after-ms=300;times=1;key={uuid.uuid4()}"
    async with _client(ttstream_emulator, spec) as client, client.batch(concurrency=4) as batch:
        for i in range(6):
            batch.add(f"p{i}")
        results = [result async for result in batch]
    assert all(result.ok for result in results)
    assert batch.rate_limited == 1
    assert batch.pauses == 1
    assert batch.paused_seconds == pytest.approx(0.3, abs=0.05)
    assert batch.lowest_limit == 2  # halved once
    assert batch.limit > 2  # and grown back
    assert sum(result.attempts for result in results) == 7  # the 429 was retried once


async def test_jobs_rate_limited_past_the_clients_retries_are_run_again(
    ttstream_emulator: EmulatorServer,
) -> None:
    spec = f"status=429;retry-after-ms=10;times=3;key={uuid.uuid4()}"
    async with (
        _client(ttstream_emulator, spec, max_retries=0) as client,
        client.batch(concurrency=1) as batch,
    ):
        batch.add("p", key="p")
        (result,) = [r async for r in batch]
    assert result.ok
    assert result.attempts == 4


async def test_a_jobs_deadline_bounds_the_batchs_resends_after_429s(
    ttstream_emulator: EmulatorServer,
) -> None:
    # Each resend after a 429 was a new stream with the whole deadline again: a job of
    # deadline=1 s kept rate-limited took 6 streams and about 5 s.
    spec = f"status=429;retry-after-ms=400;times=100;key={uuid.uuid4()}"
    async with (
        _client(ttstream_emulator, spec, max_retries=1) as client,
        client.batch(concurrency=1) as batch,
    ):
        batch.add("p", key="p", deadline=1.0)
        start = anyio.current_time()
        (result,) = [r async for r in batch]
        elapsed = anyio.current_time() - start
    assert isinstance(result.error, ttstream.APITimeoutError)
    assert result.error.timeout == "deadline"
    assert "rate-limited" in str(result.error)
    assert isinstance(result.error.__cause__, ttstream.TTStreamError)
    assert elapsed < 1.4
    assert 2 <= result.attempts <= 4


async def test_images_per_minute_paces_requests(ttstream_emulator: EmulatorServer) -> None:
    async with (
        _client(ttstream_emulator) as client,
        client.batch(concurrency=8, images_per_minute=600) as batch,  # one image per 0.1 s
    ):
        batch.add("a", n=2)
        batch.add("b")
        batch.add("c")
        start = anyio.current_time()
        results = [r async for r in batch]
        elapsed = anyio.current_time() - start
    assert all(r.ok for r in results)
    # 2 images, then 1, then 1: the third request could not start before 0.3 s.
    assert elapsed >= 0.3


async def test_a_pause_never_ends_with_two_paced_requests_at_once(
    ttstream_emulator: EmulatorServer,
) -> None:
    # The slot of the job waiting when the 429 came was used up during the pause: it
    # then started together with the job sent again after the 429, 1 ms apart at 600 rpm.
    spec = f"status=429;retry-after-ms=400;times=1;key={uuid.uuid4()}"
    starts: list[float] = []

    async def hook(request: httpx2.Request) -> None:
        if len(starts) == 4:
            request.headers["X-Emulator-Fault"] = spec
        starts.append(anyio.current_time())

    http = httpx2.AsyncClient(timeout=DEFAULT_TIMEOUT, event_hooks={"request": [hook]})
    client = ttstream.AsyncClient(
        EMULATOR_KEY, base_url=ttstream_emulator.base_url, http_client=http, max_retries=0
    )
    async with client, client.batch(concurrency=16, requests_per_minute=600) as batch:
        for i in range(10):
            batch.add(f"p{i}")
        results = [r async for r in batch]
    assert all(r.ok for r in results)
    assert batch.pauses == 1
    assert len(starts) == 11  # the job rate-limited was sent again by the batch, paced
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) > 0.05, gaps  # one every 0.1 s


def test_no_60_second_window_holds_more_images_than_images_per_minute() -> None:
    # Requests were spaced by the images of the one before: at 5 images a minute, two
    # requests of 4 images started 48 s apart, 8 images in one minute.
    from ttstream._pacing import Pacing

    pacing = Pacing(1, 5, None)
    assert pacing.claim(0.0, 4) == 0.0
    assert pacing.claim(0.0, 4) == 60.0
    pacing = Pacing(1, 10, 30)
    sizes = [1, 3, 2, 4, 1, 1, 5, 2, 3, 1, 4, 2, 1, 10, 1, 2] * 3
    slots = [(pacing.claim(0.0, n), n) for n in sizes]
    times = [at for at, _ in slots]
    assert times == sorted(times)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 2.0  # 30 rpm
    for start, _ in slots:
        assert sum(n for at, n in slots if start <= at < start + 60.0) <= 10


async def test_a_pending_job_keeps_its_parameters_not_a_stream() -> None:
    # Each job added kept the stream made to check its parameters (its request body,
    # headers and telemetry): about 3 kB a job, 4 GB for a JOBS file of a million lines.
    import gc
    import tracemalloc

    client = ttstream.AsyncClient(EMULATOR_KEY, base_url="http://127.0.0.1:9/v1")
    async with client:
        batch = client.batch()
        batch.add("warm up", key="warm-up", size="1024x1024", quality="low")
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(2000):
                batch.add(f"a product photo {i}", key=f"sku-{i}", size="1024x1024", quality="low")
            gc.collect()
            per_job = (tracemalloc.get_traced_memory()[0] - before) / 2000
        finally:
            tracemalloc.stop()
    assert per_job < 1500, per_job


def _rows(path: Path) -> dict[str, tuple[str, int, str]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key, state, attempts, outputs FROM jobs").fetchall()
    return {key: (state, attempts, outputs) for key, state, attempts, outputs in rows}


async def test_a_rerun_sends_nothing_for_done_jobs(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    out = tmp_path / "out"

    async def run() -> dict[str, ttstream.JobResult]:
        async with (
            _client(ttstream_emulator) as client,
            client.batch(journal=journal, out=out) as batch,
        ):
            batch.add("one", key="one")
            batch.add("two", key="two", output_format="jpeg")
            return await _collect(batch)

    first = await run()
    assert all(r.ok and not r.from_journal for r in first.values())
    assert first["one"].paths == (out / "one.png",)
    assert first["two"].paths == (out / "two.jpg",)
    assert (out / "one.png").read_bytes() == first["one"].events[0].image_bytes
    assert _rows(journal)["one"][:2] == ("done", 1)
    before = ttstream_emulator.stream_stats.generations
    second = await run()
    assert ttstream_emulator.stream_stats.generations == before
    assert all(r.from_journal and r.ok for r in second.values())
    assert second["one"].paths == (out / "one.png",)
    assert second["one"].usage == first["one"].usage


async def test_a_changed_job_runs_again(ttstream_emulator: EmulatorServer, tmp_path: Path) -> None:
    journal = tmp_path / "run.sqlite"
    for size in ("1024x1024", "1536x1024"):
        async with (
            _client(ttstream_emulator) as client,
            client.batch(journal=journal, out=tmp_path) as batch,
        ):
            batch.add("one", key="one", size=size)
            (result,) = [r async for r in batch]
        assert not result.from_journal
    assert sorted(p.name for p in tmp_path.glob("one*")) == ["one.png", "one_2.png"]


async def test_cancelling_leaves_jobs_in_flight_to_rerun(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    spec = "stall=30"
    async with _client(ttstream_emulator, spec) as client:
        with anyio.move_on_after(1):
            async with client.batch(journal=journal, concurrency=2) as batch:
                batch.add("slow 1", key="s1", partial_images=1)
                batch.add("slow 2", key="s2", partial_images=1)
                batch.add("slow 3", key="s3", partial_images=1)
                async for _ in batch:
                    pytest.fail("no job can finish")
    assert {key: row[0] for key, row in _rows(journal).items()} == {
        "s1": "running",
        "s2": "running",
    }
    for _ in range(100):  # the server notices the closed connections a moment later
        if ttstream_emulator.stream_stats.open_streams == 0:
            break
        await anyio.sleep(0.02)
    assert ttstream_emulator.stream_stats.open_streams == 0
    async with _client(ttstream_emulator) as client, client.batch(journal=journal) as batch:
        for key in ("s1", "s2", "s3"):
            batch.add(f"slow {key[1]}", key=key, partial_images=1)
        results = await _collect(batch)
    assert all(r.ok for r in results.values())
    assert results["s1"].resumed
    assert results["s2"].resumed
    assert not results["s3"].resumed
    assert batch.resumed == 2
    assert results["s1"].attempts == 2  # one in each run


async def test_a_corrupt_journal_is_a_journal_error(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    journal.write_bytes(b"not a database at all" * 100)
    async with _client(ttstream_emulator) as client:
        with pytest.raises(ttstream.JournalError, match=r"run\.sqlite"):
            async with client.batch(journal=journal):
                pass


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("outputs", "not json"),
        ("outputs", "5"),
        ("usage", "[1]"),
        ("attempts", "many"),
        ("staged", "[1]"),
        ("staged", '[{"path": "k.png"}]'),
        # a temporary file that is not one of ours: a rerun would remove it
        (
            "staged",
            json.dumps(
                [{"path": "k.png", "temporary": "notes.txt", "size": 1, "sha256": "0" * 64}]
            ),
        ),
    ],
)
async def test_a_journal_row_it_did_not_write_is_a_journal_error(
    ttstream_emulator: EmulatorServer, tmp_path: Path, column: str, value: str
) -> None:
    # a row edited by hand: json.loads' ValueError (or int's, or a TypeError) escaped
    journal = tmp_path / "run.sqlite"
    async with _client(ttstream_emulator) as client:
        async with client.batch(journal=journal) as batch:
            batch.add("a kite", key="k", size="64x48")
            [result async for result in batch]
        with sqlite3.connect(journal) as db:
            db.execute(f"UPDATE jobs SET {column}=? WHERE key='k'", (value,))
        db.close()
        with pytest.raises(ttstream.JournalError, match=r"run\.sqlite.*malformed"):
            async with client.batch(journal=journal):
                pass


async def test_a_response_id_that_echoes_the_key_is_not_journaled(tmp_path: Path) -> None:
    from ttstream._journal import Journal

    key = "journal-echoed-key-0123"
    client = ttstream.AsyncClient(key, base_url="http://127.0.0.1:9")  # registers the key
    journal = await Journal.open(tmp_path / "run.sqlite")
    try:
        await journal.start("k", "h", attempts=1)
        await journal.progress("k", response_id=f"resp_{key}", sequence_number=3)
        await journal.progress("k", response_id="resp_ok", sequence_number=4)
        await journal.progress("k", response_id=f"resp_{key}", sequence_number=5)
        row = (await journal.rows())["k"]
    finally:
        await journal.aclose()
        await client.aclose()
    assert (row.response_id, row.sequence_number) == ("resp_ok", 4)
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert key.encode() not in stored


async def test_cost_is_summed(ttstream_emulator: EmulatorServer) -> None:
    pytest.importorskip("genai_prices")
    async with _client(ttstream_emulator) as client, client.batch() as batch:
        batch.add("a", model="gpt-image-1")
        batch.add("b", model="gpt-image-1")
        results = [r async for r in batch]
    costs = [r.cost for r in results]
    assert all(isinstance(c, decimal.Decimal) and c > 0 for c in costs)
    assert batch.cost == sum(costs)


@pytest.fixture
def sync_client(ttstream_emulator: EmulatorServer) -> Iterator[ttstream.Client]:
    with ttstream.Client(EMULATOR_KEY, base_url=ttstream_emulator.base_url) as client:
        yield client


def test_the_sync_client_iterates_a_batch(sync_client: ttstream.Client) -> None:
    with sync_client.batch(concurrency=2) as batch:
        keys = [batch.add(f"p{i}") for i in range(3)]
        results = list(batch)
    assert sorted(r.key for r in results) == keys
    assert all(r.ok for r in results)
    assert batch.batch.done == 3


async def test_an_error_in_the_body_closes_every_stream_and_goes_on_as_it_is(
    ttstream_emulator: EmulatorServer,
) -> None:

    async def fail_once_streaming(client: ttstream.AsyncClient) -> None:
        async with client.batch(concurrency=3) as batch:
            for i in range(3):
                batch.add(f"p{i}", partial_images=1)
            for _ in range(1000):  # until the three streams are open (at most 10 s)
                if len([job for job in batch.running() if job.previews]) == 3:
                    break
                await anyio.sleep(0.01)
            raise KeyError("boom")

    async with _client(ttstream_emulator, "stall=30") as client:
        with pytest.raises(KeyError, match="boom"):
            await fail_once_streaming(client)
    for _ in range(100):
        if ttstream_emulator.stream_stats.open_streams == 0:
            break
        await anyio.sleep(0.02)
    assert ttstream_emulator.stream_stats.open_streams == 0


async def test_leaving_early_cancels_what_still_runs(ttstream_emulator: EmulatorServer) -> None:
    before = ttstream_emulator.stream_stats.generations
    async with _client(ttstream_emulator) as client:
        async with client.batch(concurrency=1) as batch:
            for i in range(20):
                batch.add(f"p{i}")
            async for result in batch:
                assert result.ok
                break
        with pytest.raises(ttstream.TTStreamError, match="has ended"):
            batch.add("late")
    assert ttstream_emulator.stream_stats.generations - before < 20


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=0.3) as server:
        yield server


async def _stop_after_previews(
    client: ttstream.AsyncClient,
    journal: Path,
    add: Callable[[ttstream.Batch], object],
    previews: int,
) -> None:
    """Runs a batch of the jobs ``add`` adds until one has shown ``previews`` previews
    (at most 10 s), then stops it, as a crash would."""
    with anyio.CancelScope() as scope:
        async with client.batch(journal=journal) as batch:
            add(batch)
            for _ in range(1000):
                if any(job.previews >= previews for job in batch.running()):
                    scope.cancel()
                await anyio.sleep(0.01)


KITE_TOOLS = [{"type": "image_generation", "partial_images": 2, "size": "64x48"}]


def _add_kite(batch: ttstream.Batch) -> None:
    """One background Responses job of one image and two previews, key ``kite``."""
    batch.respond("a kite", model="gpt-5", tools=KITE_TOOLS, background=True, key="kite")


async def _kite_stopped_after_a_preview(emulator: EmulatorServer, journal: Path) -> int:
    """Runs the kite job until its first preview, then stops, as a crash would; answers
    the emulator's generation count before it started."""
    before = emulator.stream_stats.generations
    async with _client(emulator) as client:
        await _stop_after_previews(client, journal, _add_kite, 1)
    return before


async def test_a_background_response_in_flight_is_resumed_not_paid_again(
    slow_emulator: EmulatorServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    before = await _kite_stopped_after_a_preview(slow_emulator, journal)
    with sqlite3.connect(journal) as db:
        ((state, response_id, number),) = db.execute(
            "SELECT state, response_id, sequence_number FROM jobs"
        ).fetchall()
    assert state == "running"
    assert response_id
    assert number is not None
    async with _client(slow_emulator) as client, client.batch(journal=journal) as batch:
        _add_kite(batch)
        (result,) = [r async for r in batch]
    assert result.ok, result.error
    assert result.resumed
    assert [type(e).__name__ for e in result.events] == ["Completed"]
    assert result.events[0].response_id == response_id
    assert slow_emulator.stream_stats.generations - before == 1  # one image, paid once


async def test_a_resumed_job_sends_the_headers_and_query_it_was_added_with(
    slow_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A rerun resumes a job in flight with its own ``extra_headers`` and ``extra_query``;
    the headers are not part of what the journal compares (a new key, the same job)."""
    journal = tmp_path / "run.sqlite"

    def kite(team: str) -> Callable[[ttstream.Batch], object]:
        return lambda batch: batch.respond(
            "a kite",
            model="gpt-5",
            tools=KITE_TOOLS,
            background=True,
            key="kite",
            extra_headers={"X-Team": team},
            extra_query={"region": "eu"},
        )

    async with _client(slow_emulator) as client:
        await _stop_after_previews(client, journal, kite("owl"), 1)
    sent: list[httpx2.Request] = []

    async def record(request: httpx2.Request) -> None:
        sent.append(request)

    http = httpx2.AsyncClient(timeout=DEFAULT_TIMEOUT, event_hooks={"request": [record]})
    async with (
        http,
        ttstream.AsyncClient(
            EMULATOR_KEY, base_url=slow_emulator.base_url, http_client=http
        ) as client,
        client.batch(journal=journal) as batch,
    ):
        kite("fox")(batch)
        (result,) = [r async for r in batch]
    assert result.ok, result.error
    assert result.resumed
    assert [(r.method, r.headers["x-team"], r.url.params["region"]) for r in sent] == [
        ("GET", "fox", "eu")
    ]


async def test_a_key_rotated_in_the_query_is_the_same_job_and_old_journals_still_match(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A query parameter whose name says it carries a secret is left out of the hash,
    as ``extra_headers`` are: a new ``sig`` does not pay for the job again. A job without
    one is hashed as before, so a journal written before still matches it."""
    journal, out = tmp_path / "run.sqlite", tmp_path / "out"

    def add(batch: ttstream.Batch, sig: str) -> None:
        batch.add("a kite", key="kite", size="64x48", extra_query={"region": "eu", "sig": sig})
        batch.add("an owl", key="owl", size="64x48", extra_query={"region": "eu"})

    async with _client(ttstream_emulator) as client, client.batch(journal=journal, out=out) as b:
        add(b, "sig-one")
        assert all(result.ok for result in (await _collect(b)).values())
    # The owl's hash as every earlier ttstream wrote it: its parameters as canonical JSON.
    owl: dict[str, object] = {"operation": "generation", "prompt": "an owl", "size": "64x48"}
    owl["extra_query"] = {"region": "eu"}
    text = json.dumps(owl, sort_keys=True, separators=(",", ":"))
    with sqlite3.connect(journal) as db:
        [(stored,)] = db.execute("SELECT params_hash FROM jobs WHERE key = 'owl'").fetchall()
    db.close()
    assert stored == hashlib.sha256(text.encode()).hexdigest()
    before = ttstream_emulator.stream_stats.generations
    async with _client(ttstream_emulator) as client, client.batch(journal=journal, out=out) as b:
        add(b, "sig-two")
        results = await _collect(b)
    assert results["kite"].from_journal
    assert results["owl"].from_journal
    assert ttstream_emulator.stream_stats.generations == before  # nothing paid again


async def test_a_rerun_whose_resume_is_rate_limited_resumes_again_never_posts(
    slow_emulator: EmulatorServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    before = await _kite_stopped_after_a_preview(slow_emulator, journal)
    spec = f"status=429;retry-after-ms=0;times=1;key={uuid.uuid4()}"  # the resume: 429
    async with (
        _client(slow_emulator, spec, max_retries=0) as client,
        client.batch(journal=journal) as batch,
    ):
        _add_kite(batch)
        (result,) = [r async for r in batch]
    assert result.ok, result.error
    assert slow_emulator.stream_stats.requests(spec) == 2  # the GET refused, the GET again
    assert len(result.events) == 1
    assert slow_emulator.stream_stats.generations - before == 1  # paid once


async def test_a_cut_response_whose_resume_is_rate_limited_is_resumed_not_paid_again(
    ttstream_emulator: EmulatorServer,
) -> None:
    # the POST cut after its first preview, the resume refused once, then served
    spec = f"drop-after=4;resume-status=429;retry-after-ms=0;times=2;key={uuid.uuid4()}"
    before = ttstream_emulator.stream_stats.generations
    async with (
        _client(ttstream_emulator, spec, max_retries=0) as client,
        client.batch() as batch,
    ):
        _add_kite(batch)
        (result,) = [r async for r in batch]
    assert result.ok, result.error
    assert len(result.events) == 1
    assert ttstream_emulator.stream_stats.requests(spec) == 3  # POST, GET (429), GET
    assert ttstream_emulator.stream_stats.generations - before == 1  # paid once


def _two_images(after: int) -> Answer:
    """A background response of two image items, its events after ``after``: ig_1 done
    at 3, a preview of ig_2 at 5, ig_2 done at 6, the response completed at 7."""
    image = base64.b64encode(b"image").decode()
    created = {"id": "resp_A", "object": "response", "status": "in_progress", "output": []}
    done = [{"type": "image_generation_call", "id": f"ig_{i}", "status": "completed",
             "result": image} for i in (1, 2)]  # fmt: skip
    events: list[dict[str, object]] = [
        {"type": "response.created", "response": created},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**done[0], "status": "in_progress", "result": None}},
        {"type": "response.image_generation_call.partial_image", "item_id": "ig_1",
         "output_index": 0, "partial_image_index": 0, "partial_image_b64": image},
        {"type": "response.output_item.done", "output_index": 0, "item": done[0]},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {**done[1], "status": "in_progress", "result": None}},
        {"type": "response.image_generation_call.partial_image", "item_id": "ig_2",
         "output_index": 1, "partial_image_index": 0, "partial_image_b64": image},
        {"type": "response.output_item.done", "output_index": 1, "item": done[1]},
        {"type": "response.completed",
         "response": {**created, "status": "completed", "output": done}},
    ]  # fmt: skip
    frames = [
        f"event: {event['type']}\ndata: {json.dumps({**event, 'sequence_number': number})}\n\n"
        for number, event in enumerate(events)
    ]
    if after < 0:  # the first run: up to the preview of ig_2, then nothing more
        return Answer([frame.encode() for frame in frames[:6]], end="hang")
    return Answer([frame.encode() for frame in frames[after + 1 :]])


async def test_a_resumed_response_delivers_the_images_finished_before_the_stop(
    tmp_path: Path,
) -> None:
    journal, out = tmp_path / "run.sqlite", tmp_path / "out"

    def answer(request: Request) -> Answer:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        return _two_images(int(query.get("starting_after", ["-1"])[0]))

    def add(batch: ttstream.Batch) -> None:
        batch.respond("two kites", model="gpt-5", background=True, key="kites")

    with ScriptedServer(answer) as server:
        async with ttstream.AsyncClient(EMULATOR_KEY, base_url=server.url) as client:
            await _stop_after_previews(client, journal, add, 2)  # ig_1 done, ig_2 shown
            async with client.batch(journal=journal, out=out) as batch:
                add(batch)
                (result,) = [r async for r in batch]
        assert [request.method for request in server.requests] == ["POST", "GET"]
    assert result.ok, result.error
    assert [event.item_id for event in result.events] == ["ig_1", "ig_2"]
    assert sorted(path.name for path in out.iterdir()) == ["kites-2.png", "kites.png"]


CRASHING_RUN = """
import sys, anyio, ttstream

async def main(base_url, journal):
    async with ttstream.AsyncClient("emulator-key", base_url=base_url) as client:
        async with client.batch(concurrency=3, journal=journal) as batch:
            for i in range(9):
                batch.add(f"kite {i}", key=f"k{i}", size="64x48", partial_images=1)
            async for result in batch:
                print(result.key, flush=True)

anyio.run(main, sys.argv[1], sys.argv[2])
"""


def test_a_killed_process_leaves_a_sound_journal_and_the_rerun_pays_only_the_rest(
    slow_emulator: EmulatorServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    script = tmp_path / "run.py"
    script.write_text(CRASHING_RUN, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script), slow_emulator.base_url, str(journal)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()  # one job done, others in flight
        assert first.startswith("k")
    finally:
        process.kill()  # SIGKILL: no cleanup of any kind
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    with sqlite3.connect(journal) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        done = {key for (key,) in db.execute("SELECT key FROM jobs WHERE state = 'done'")}
    assert first in done
    before = slow_emulator.stream_stats.generations

    async def rerun() -> list[ttstream.JobResult]:
        async with (
            _client(slow_emulator) as client,
            client.batch(concurrency=9, journal=journal) as batch,
        ):
            for i in range(9):
                batch.add(f"kite {i}", key=f"k{i}", size="64x48", partial_images=1)
            return [r async for r in batch]

    results = anyio.run(rerun)
    assert all(r.ok for r in results)
    assert {r.key for r in results if r.from_journal} == done
    assert slow_emulator.stream_stats.generations - before == 9 - len(done)


INTERRUPTED_SYNC_RUN = """
import os, signal, sys, threading
import ttstream

with ttstream.Client("emulator-key", base_url=sys.argv[1]) as client:
    try:
        with client.batch(concurrency=2, journal=sys.argv[2]) as batch:
            for i in range(4):
                batch.add(f"kite {i}", key=f"k{i}", size="64x48", partial_images=2)
            for number, result in enumerate(batch):
                print("result", result.key, flush=True)
                if number == 0:  # one Ctrl-C, while the next jobs run
                    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
"""


def test_ctrl_c_in_a_sync_batch_closes_the_streams_and_keeps_the_journal(
    slow_emulator: EmulatorServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    script = tmp_path / "run.py"
    script.write_text(INTERRUPTED_SYNC_RUN, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), slow_emulator.base_url, str(journal)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "interrupted"
    finished = {line.split()[1] for line in lines if line.startswith("result ")}
    states = {key: row[0] for key, row in _rows(journal).items()}
    assert {key for key, state in states.items() if state == "done"} == finished
    assert set(states.values()) == {"done", "running"}
    for _ in range(100):
        if slow_emulator.stream_stats.open_streams == 0:
            break
        time.sleep(0.02)
    assert slow_emulator.stream_stats.open_streams == 0


KILLED_BEFORE_DONE = """
import os, signal, sys, anyio, ttstream
from ttstream import _journal

base_url, journal, out, kill_at = sys.argv[1:]
if kill_at == "link":  # the first file about to get its name
    os.link = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
else:  # every file named, the done commit about to start
    finish = _journal.Journal.finish

    async def finish_or_die(self, key, *, state, **options):
        if state == "done":
            os.kill(os.getpid(), signal.SIGKILL)
        await finish(self, key, state=state, **options)

    _journal.Journal.finish = finish_or_die

async def main():
    async with ttstream.AsyncClient("emulator-key", base_url=base_url) as client:
        async with client.batch(journal=journal, out=out) as batch:
            batch.add("two kites", key="kite", size="64x48", n=2)
            async for result in batch:
                print("not killed", result, flush=True)

anyio.run(main)
"""


def _killed_before_done(server: EmulatorServer, tmp_path: Path, kill_at: str) -> int:
    """Runs a one-job batch (2 images, ``out=``) in a process SIGKILLed at ``kill_at``
    (``link``: before the first file gets its name; ``done``: every file named, before
    the done commit); returns the emulator's generations after it."""
    script = tmp_path / "run.py"
    script.write_text(KILLED_BEFORE_DONE, encoding="utf-8")
    args = [server.base_url, str(tmp_path / "run.sqlite"), str(tmp_path / "out"), kill_at]
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -9, done.stdout + done.stderr
    assert _rows(tmp_path / "run.sqlite")["kite"][0] == "running"
    return server.stream_stats.generations


async def _rerun_kites(server: EmulatorServer, tmp_path: Path) -> ttstream.JobResult:
    async with (
        _client(server) as client,
        client.batch(journal=tmp_path / "run.sqlite", out=tmp_path / "out") as batch,
    ):
        batch.add("two kites", key="kite", size="64x48", n=2)
        (result,) = [r async for r in batch]
    assert result.ok, result.error
    return result


def _assert_kites_done(result: ttstream.JobResult, tmp_path: Path) -> None:
    """The kite job's files are its images, and its row is done after one request."""
    for path in result.paths:
        with Image.open(path) as image:
            assert image.size == (64, 48)
    assert _rows(tmp_path / "run.sqlite")["kite"] == (
        "done",
        1,
        json.dumps([str(path) for path in result.paths]),
    )


@pytest.mark.parametrize("kill_at", ["link", "done"])
def test_a_kill_after_the_images_are_written_costs_no_second_request(
    ttstream_emulator: EmulatorServer, tmp_path: Path, kill_at: str
) -> None:
    # The window: the images were paid for and are on disk (named, or still in their
    # temporary files), the journal still says running. The rerun finishes the job from
    # the disk: no request, no second copy (kite_2.png).
    out = tmp_path / "out"
    before = _killed_before_done(ttstream_emulator, tmp_path, kill_at)
    result = anyio.run(_rerun_kites, ttstream_emulator, tmp_path)
    assert ttstream_emulator.stream_stats.generations == before
    assert result.from_journal
    assert result.attempts == 1
    assert result.usage is not None
    assert result.usage["output_tokens"] > 0
    assert result.paths == (out / "kite.png", out / "kite-2.png")
    assert sorted(path.name for path in out.iterdir()) == ["kite-2.png", "kite.png"]
    _assert_kites_done(result, tmp_path)
    again = anyio.run(_rerun_kites, ttstream_emulator, tmp_path)  # now a plain done row
    assert again.from_journal
    assert again.paths == result.paths
    assert ttstream_emulator.stream_stats.generations == before


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_staged_file_missing_or_truncated_makes_the_job_run_again(
    ttstream_emulator: EmulatorServer, tmp_path: Path, damage: str
) -> None:
    out = tmp_path / "out"
    before = _killed_before_done(ttstream_emulator, tmp_path, "done")
    with sqlite3.connect(tmp_path / "run.sqlite") as db:
        (staged,) = db.execute("SELECT staged FROM jobs WHERE key = 'kite'").fetchone()
    db.close()
    journaled = {item["path"]: (item["size"], item["sha256"]) for item in json.loads(staged)}
    on_disk = {
        str(path): (len(path.read_bytes()), hashlib.sha256(path.read_bytes()).hexdigest())
        for path in out.iterdir()
    }
    assert journaled == on_disk
    second = out / "kite-2.png"
    if damage == "missing":
        second.unlink()
    else:
        second.write_bytes(second.read_bytes()[:-1])
    kept = {path.name: path.read_bytes() for path in out.iterdir()}
    result = anyio.run(_rerun_kites, ttstream_emulator, tmp_path)
    assert ttstream_emulator.stream_stats.generations == before + 2
    assert not result.from_journal
    assert result.resumed
    assert result.attempts == 2
    # the files of the killed run stay as they are; the new ones take free names
    assert {name: (out / name).read_bytes() for name in kept} == kept
    new = {"kite_2.png", "kite-2.png"} if damage == "missing" else {"kite_2.png", "kite-2_2.png"}
    assert {path.name for path in result.paths} == new
    assert sorted(path.name for path in out.iterdir()) == sorted({*kept, *new})


def test_a_rerun_after_out_was_removed_runs_the_staged_job_again(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    # The killed run's files and their directory are gone: nothing to finish from, so the
    # job runs again (it failed with FileNotFoundError on every rerun, its row kept).
    out = tmp_path / "out"
    before = _killed_before_done(ttstream_emulator, tmp_path, "done")
    shutil.rmtree(out)
    result = anyio.run(_rerun_kites, ttstream_emulator, tmp_path)
    assert ttstream_emulator.stream_stats.generations == before + 2
    assert result.resumed
    assert not result.from_journal
    assert result.paths == (out / "kite.png", out / "kite-2.png")
    assert _rows(tmp_path / "run.sqlite")["kite"][0] == "done"


@pytest.mark.parametrize("refusal", ["open", "fsync"])
async def test_a_directory_that_cannot_be_synced_still_gets_the_images(
    ttstream_emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    refusal: str,
) -> None:
    # A directory this user may write in but not read (mode -wx: EACCES on opening it),
    # or a file system that does not sync directories (EINVAL): the job was paid for,
    # then failed with that OSError, its images discarded.
    opened, synced = os.open, os.fsync
    directories: set[int] = set()

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_DIRECTORY and refusal == "open":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        fd = opened(path, flags, *args, **kwargs)
        if flags & os.O_DIRECTORY:
            directories.add(fd)
        return fd

    def fsync(fd: int) -> None:
        if fd in directories:
            raise OSError(errno.EINVAL, "Invalid argument")
        synced(fd)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "out"
    async with (
        _client(ttstream_emulator) as client,
        client.batch(journal=tmp_path / "run.sqlite", out=out) as batch,
    ):
        batch.add("a kite", key="kite", size="64x48")
        (result,) = [r async for r in batch]
    assert result.ok, result.error
    assert result.paths == (out / "kite.png",)
    assert sorted(path.name for path in out.iterdir()) == ["kite.png"]


async def test_a_journal_that_refuses_the_staged_files_keeps_the_paid_images(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    # The journal refusing the write of the staged list (full, locked too long): the
    # images, paid for and complete in their temporary files, were deleted with them.
    journal, out = tmp_path / "run.sqlite", tmp_path / "out"
    async with _client(ttstream_emulator) as client, client.batch(journal=journal) as batch:
        batch.add("a boat", key="boat", size="64x48")  # makes the journal
        [r async for r in batch]
    with sqlite3.connect(journal) as db:
        db.execute(
            "CREATE TRIGGER full BEFORE UPDATE OF staged ON jobs WHEN NEW.staged != '[]'"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    db.close()
    async with (
        _client(ttstream_emulator) as client,
        client.batch(journal=journal, out=out) as batch,
    ):
        batch.add("a kite", key="kite", size="64x48")
        (result,) = [r async for r in batch]
    assert isinstance(result.error, ttstream.JournalError), result.error
    assert "disk is full" in str(result.error)
    assert sorted(path.name for path in out.iterdir()) == ["kite.png"]
    with Image.open(out / "kite.png") as image:
        assert image.size == (64, 48)


OLD_JOURNAL = """
CREATE TABLE jobs (
    key TEXT PRIMARY KEY,
    params_hash TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    outputs TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    usage TEXT,
    cost TEXT,
    response_id TEXT,
    sequence_number INTEGER,
    updated REAL NOT NULL
)
"""


async def test_a_journal_of_the_first_schema_is_migrated_and_kept(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    out = tmp_path / "out"

    def batch(client: ttstream.AsyncClient) -> ttstream.Batch:
        return client.batch(journal=journal, out=out)

    async with _client(ttstream_emulator) as client, batch(client) as first:
        first.add("one kite", key="one", size="64x48")
        first.add("two kites", key="two", size="64x48")
        [r async for r in first]
    with sqlite3.connect(journal) as db:  # as the version before `staged` left it
        columns = [line.split()[0] for line in OLD_JOURNAL.splitlines()[2:-1]]
        rows = db.execute(f"SELECT {', '.join(columns)} FROM jobs").fetchall()
        db.execute("DROP TABLE jobs")
        db.execute(OLD_JOURNAL)
        db.executemany(f"INSERT INTO jobs VALUES ({', '.join('?' * len(columns))})", rows)
        db.execute("UPDATE jobs SET state = 'running' WHERE key = 'two'")
        db.execute("PRAGMA user_version = 0")
    db.close()
    before = ttstream_emulator.stream_stats.generations
    async with _client(ttstream_emulator) as client, batch(client) as second:
        second.add("one kite", key="one", size="64x48")
        second.add("two kites", key="two", size="64x48")
        results = await _collect(second)
    assert results["one"].from_journal
    assert results["one"].paths == (out / "one.png",)
    assert results["two"].resumed  # a running row with nothing staged runs again
    assert ttstream_emulator.stream_stats.generations == before + 1
    with sqlite3.connect(journal) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        table = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
        assert db.execute("SELECT staged FROM jobs").fetchall() == [("[]",), ("[]",)]
    db.close()
    assert table == [*columns, "staged"]


async def test_a_journal_of_a_newer_schema_is_a_journal_error(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    with sqlite3.connect(journal) as db:
        db.execute(OLD_JOURNAL)
        db.execute("PRAGMA user_version = 7")
    db.close()
    async with _client(ttstream_emulator) as client:
        with pytest.raises(ttstream.JournalError, match=r"run\.sqlite.*version 7 is newer"):
            async with client.batch(journal=journal):
                pass


def test_a_name_taken_between_staging_and_linking_gets_the_next_one(tmp_path: Path) -> None:
    from ttstream._files import publish, stage

    staged = stage(tmp_path, [("a.png", b"first"), ("b.png", b"second")])
    (tmp_path / "a.png").write_bytes(b"another writer's")
    assert publish(staged, 0) == 0
    assert staged[0].path == str(tmp_path / "a_2.png")
    assert publish(staged, 0) == 2
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == {
        "a.png": b"another writer's",
        "a_2.png": b"first",
        "b.png": b"second",
    }


async def test_a_journal_serves_one_batch_at_a_time(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    # Two runs on one journal: the second's restore linked and removed the files the
    # first was writing, and a job could be paid twice.
    journal = tmp_path / "run.sqlite"
    async with _client(ttstream_emulator) as client:
        async with client.batch(journal=journal) as first:
            with pytest.raises(ttstream.JournalError) as refused:
                async with client.batch(journal=journal):
                    pass
            first.add("a kite", key="kite", size="64x48")
            (result,) = [r async for r in first]
        assert result.ok, result.error
        message = str(refused.value)
        assert str(journal) in message
        assert "another batch run" in message
        assert "another journal" in message
        async with client.batch(journal=journal) as second:  # free once the first ended
            second.add("a kite", key="kite", size="64x48")
            (again,) = [r async for r in second]
    assert again.from_journal


HOLDING_RUN = """
import sys, anyio, ttstream

async def main():
    async with ttstream.AsyncClient("emulator-key", base_url=sys.argv[1]) as client:
        async with client.batch(journal=sys.argv[2]):
            print("holding", flush=True)
            await anyio.sleep(60)

anyio.run(main)
"""


def test_the_journal_of_a_killed_process_is_free(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    script = tmp_path / "hold.py"
    script.write_text(HOLDING_RUN, encoding="utf-8")

    async def enter() -> None:
        async with _client(ttstream_emulator) as client, client.batch(journal=journal):
            pass

    process = subprocess.Popen(
        [sys.executable, str(script), ttstream_emulator.base_url, str(journal)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "holding\n"
        with pytest.raises(ttstream.JournalError, match="in use by another batch run"):
            anyio.run(enter)
    finally:
        process.kill()  # SIGKILL: the process gives nothing back itself
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    anyio.run(enter)  # the kernel freed the lock


def test_a_staged_job_that_cannot_be_restored_leaves_no_name_behind(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    # Killed before any link, then the second image's temporary file lost: the restore
    # linked the first (kite.png) before finding the second missing, and the job's
    # rerun wrote its new first image beside it as kite_2.png.
    out = tmp_path / "out"
    before = _killed_before_done(ttstream_emulator, tmp_path, "link")
    with sqlite3.connect(tmp_path / "run.sqlite") as db:
        (staged,) = db.execute("SELECT staged FROM jobs WHERE key = 'kite'").fetchone()
    db.close()
    Path(json.loads(staged)[1]["temporary"]).unlink()
    result = anyio.run(_rerun_kites, ttstream_emulator, tmp_path)
    assert ttstream_emulator.stream_stats.generations == before + 2
    assert not result.from_journal
    assert result.paths == (out / "kite.png", out / "kite-2.png")
    assert sorted(path.name for path in out.iterdir()) == ["kite-2.png", "kite.png"]


def test_a_staged_name_taken_meanwhile_gets_the_next_free_one_on_the_rerun(
    ttstream_emulator: EmulatorServer, tmp_path: Path
) -> None:
    # Killed before any link, then another program wrote kite.png: the rerun deleted the
    # intact temporary files and paid for the job again.
    out = tmp_path / "out"
    before = _killed_before_done(ttstream_emulator, tmp_path, "link")
    (out / "kite.png").write_bytes(b"another program's")
    result = anyio.run(_rerun_kites, ttstream_emulator, tmp_path)
    assert ttstream_emulator.stream_stats.generations == before
    assert result.from_journal
    assert result.paths == (out / "kite_2.png", out / "kite-2.png")
    assert sorted(path.name for path in out.iterdir()) == ["kite-2.png", "kite.png", "kite_2.png"]
    assert (out / "kite.png").read_bytes() == b"another program's"
    _assert_kites_done(result, tmp_path)
