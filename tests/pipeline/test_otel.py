"""OpenTelemetry: one span per generation with GenAI attributes and events, and the
metrics; recorded with the SDK's in-memory exporters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ttstream
from ttstream import _otel
from ttstream.client import DEFAULT_TIMEOUT
from ttstream.emulator import EmulatorServer

pytestmark = pytest.mark.anyio

KEY = "sk-otel-0123456789abcdefghij"


@pytest.fixture(scope="session")
def otel() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    """The process's tracer and meter providers (set once: OpenTelemetry allows no
    second global provider), exporting to memory."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return exporter, reader


@pytest.fixture
def spans(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> Iterator[InMemorySpanExporter]:
    otel[0].clear()
    yield otel[0]
    otel[0].clear()


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    points: dict[str, list[Any]] = {}
    if data is None:
        return points
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


def client(
    server: EmulatorServer, fault: str | None = None, **options: Any
) -> ttstream.AsyncClient:
    headers = {"X-Emulator-Fault": fault} if fault else {}
    http = httpx2.AsyncClient(
        timeout=DEFAULT_TIMEOUT,
        limits=httpx2.Limits(max_keepalive_connections=0),
        headers=headers,
    )
    return ttstream.AsyncClient(KEY, base_url=server.base_url, http_client=http, **options)


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def no_secrets_in(span: ReadableSpan) -> None:
    values = [str(v) for v in (span.attributes or {}).values()]
    for event in span.events:
        values += [str(v) for v in (event.attributes or {}).values()]
    assert not any(KEY in value or len(value) > 200 for value in values)


async def test_a_generation_is_one_span_with_its_events(
    ttstream_emulator: EmulatorServer,
    spans: InMemorySpanExporter,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    async with (
        client(ttstream_emulator) as c,
        c.generate("a kite", partial_images=2, size="64x48") as stream,
    ):
        events = [event async for event in stream]
    span = only_span(spans)
    assert span.name == "image_generation gpt-image-2"
    assert span.kind is trace.SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "image_generation"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-image-2"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == int(ttstream_emulator.base_url.split(":")[2].split("/")[0])
    assert attributes["gen_ai.response.id"] == stream.request_id
    completed = events[-1]
    assert isinstance(completed, ttstream.Completed)
    assert completed.usage is not None
    assert attributes["gen_ai.usage.input_tokens"] == completed.usage.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == completed.usage.output_tokens
    assert "error.type" not in attributes
    assert [e.name for e in span.events] == [
        "ttstream.preview",
        "ttstream.preview",
        "ttstream.image",
    ]
    assert span.events[1].attributes["ttstream.preview.index"] == 1  # type: ignore[index]
    no_secrets_in(span)
    points = metric_points(otel[1])
    assert points["gen_ai.client.operation.duration"]
    assert points["ttstream.client.time_to_first_preview"]
    kinds = {p.attributes["gen_ai.token.type"] for p in points["gen_ai.client.token.usage"]}
    assert kinds == {"input", "output"}


async def test_a_retry_and_a_reconnection_are_span_events(
    ttstream_emulator: EmulatorServer,
    spans: InMemorySpanExporter,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    def total(name: str) -> int:
        return sum(p.value for p in metric_points(otel[1]).get(name, []))

    retries = total("ttstream.client.retries")
    fault = f"status=429;retry-after-ms=10;times=1;key={uuid.uuid4()}"
    async with client(ttstream_emulator, fault) as c, c.generate("a kite", size="64x48") as stream:
        _ = [event async for event in stream]
    span = only_span(spans)
    (retry,) = [e for e in span.events if e.name == "ttstream.retry"]
    assert dict(retry.attributes or {}) == {
        "ttstream.retry.attempt": 1,
        "ttstream.retry.delay_s": 0.01,
        "error.type": "RateLimitError" if hasattr(ttstream, "RateLimitError") else "APIStatusError",
    }
    assert total("ttstream.client.retries") == retries + 1
    spans.clear()
    async with (
        client(ttstream_emulator, "ids;drop-after=2") as c,
        c.generate("a kite", partial_images=2, size="64x48") as stream,
    ):
        _ = [event async for event in stream]
    span = only_span(spans)
    assert "ttstream.reconnection" in [e.name for e in span.events]


async def test_concurrent_streams_report_retries_to_their_own_span(
    ttstream_emulator: EmulatorServer,
    spans: InMemorySpanExporter,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    retried = {f"a kite {i}": i % 2 == 0 for i in range(6)}

    async def one(prompt: str) -> None:
        fault = f"status=429;retry-after-ms=20;times=1;key={uuid.uuid4()}"
        async with (
            client(ttstream_emulator, fault if retried[prompt] else None) as c,
            c.generate(prompt, partial_images=2, size="64x48") as stream,
        ):
            async for _ in stream:
                assert _otel._current.get() is None  # set for a step, reset after it
                await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tasks:
        for prompt in retried:
            tasks.start_soon(one, prompt)
    assert _otel._current.get() is None
    finished = spans.get_finished_spans()
    assert len(finished) == len(retried)
    for span in finished:
        assert [e.name for e in span.events].count("ttstream.retry") <= 1
    with_retry = [s for s in finished if any(e.name == "ttstream.retry" for e in s.events)]
    assert len(with_retry) == sum(retried.values())


async def test_the_current_generation_is_reset_when_a_step_is_cancelled(
    ttstream_emulator: EmulatorServer,
    spans: InMemorySpanExporter,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    fault = f"status=429;retry-after-ms=5000;times=1;key={uuid.uuid4()}"  # waits in its retry
    async with client(ttstream_emulator, fault) as c:
        stream = c.generate("a kite", size="64x48")
        with anyio.move_on_after(0.5) as scope:
            async with stream:
                pytest.fail("the retry's wait should have been cancelled")
        assert scope.cancelled_caught
        assert _otel._current.get() is None
    assert dict(only_span(spans).attributes or {})["error.type"]


async def test_steps_of_one_stream_in_two_tasks_leave_no_generation_behind(
    ttstream_emulator: EmulatorServer,
    spans: InMemorySpanExporter,
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    fault = f"status=429;retry-after-ms=10;times=1;key={uuid.uuid4()}"
    async with client(ttstream_emulator, fault) as c:
        stream = c.generate("a kite", partial_images=2, size="64x48")
        seen: list[object] = []

        async def enter() -> None:
            await stream.__aenter__()  # the first step, and its retry, in a child task
            seen.append(_otel._current.get())

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(enter)
        items = [item async for item in stream]  # the other steps in this task
        seen.append(_otel._current.get())
        await stream.aclose()
    assert seen == [None, None]
    assert len(items) == 3
    assert [e.name for e in only_span(spans).events].count("ttstream.retry") == 1


async def test_a_failure_sets_error_type(
    ttstream_emulator: EmulatorServer, spans: InMemorySpanExporter
) -> None:
    async with client(ttstream_emulator, "error-flat") as c:
        with pytest.raises(ttstream.StreamError):
            async with c.generate("a kite", partial_images=1, size="64x48") as stream:
                _ = [event async for event in stream]
    span = only_span(spans)
    assert (span.attributes or {})["error.type"] == "StreamError"
    assert span.status.status_code is trace.StatusCode.ERROR
    no_secrets_in(span)


async def test_without_the_api_nothing_is_recorded(
    ttstream_emulator: EmulatorServer, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_otel, "_opentelemetry", lambda: None)  # as without the otel extra
    async with client(ttstream_emulator) as c:
        stream = c.generate("a kite", size="64x48")
        assert stream.telemetry is None
        async with stream:
            _ = [event async for event in stream]
    assert spans.get_finished_spans() == ()


async def test_a_key_a_server_echoes_as_its_request_id_stays_out_of_the_span(
    spans: InMemorySpanExporter,
) -> None:
    import base64
    import json

    from tests.support.scripted_server import Answer, ScriptedServer

    body = {"type": "image_generation.completed", "b64_json": base64.b64encode(b"i").decode()}
    frame = f"event: {body['type']}\ndata: {json.dumps(body)}\n\n".encode()
    headers = (("Content-Type", "text/event-stream"), ("x-request-id", f"req {KEY}"))
    with ScriptedServer(Answer([frame], headers=headers)) as server:
        async with (
            ttstream.AsyncClient(KEY, base_url=server.url + "/v1") as c,
            c.generate("a kite") as stream,
        ):
            [item async for item in stream]
    span = only_span(spans)
    assert (span.attributes or {})["gen_ai.response.id"] == "req [REDACTED]"
    no_secrets_in(span)


class _CancelAtEnd(SpanProcessor):
    """Cancels ``scope`` when a span ends without error: the moment a job's stream has
    delivered its final image, before the batch writes it (the span's end is the one
    synchronous callback there)."""

    scope: anyio.CancelScope | None = None

    def on_end(self, span: ReadableSpan) -> None:
        if self.scope is not None and "error.type" not in (span.attributes or {}):
            self.scope.cancel()


async def test_a_batch_cancelled_just_after_a_job_ended_does_not_pay_for_it_again(
    ttstream_emulator: EmulatorServer,
    spans: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    # The files of a finished job were written (with out=) under the cancellation: it
    # came at their first await, the job stayed "running" and the rerun paid again.
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    processor = _CancelAtEnd()
    provider.add_span_processor(processor)
    journal, out = tmp_path / "run.sqlite", tmp_path / "out"
    before = ttstream_emulator.stream_stats.generations
    try:
        async with client(ttstream_emulator) as c:
            with anyio.CancelScope() as scope:
                processor.scope = scope
                async with c.batch(journal=journal, out=out) as batch:
                    batch.add("a kite", key="kite", size="64x48")
                    async for _ in batch:
                        pytest.fail("cancelled before its result is taken")
            assert scope.cancelled_caught
    finally:
        processor.scope = None
    assert ttstream_emulator.stream_stats.generations - before == 1
    async with client(ttstream_emulator) as c, c.batch(journal=journal, out=out) as batch:
        batch.add("a kite", key="kite", size="64x48")
        (result,) = [r async for r in batch]
    assert result.ok
    assert result.from_journal
    assert result.paths == (out / "kite.png",)
    assert ttstream_emulator.stream_stats.generations - before == 1
