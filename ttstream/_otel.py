"""OpenTelemetry: one span per generation and the client metrics (docs/observability.md).

Uses ``opentelemetry-api`` only (the ``otel`` extra). Without it, or while the
application has set no tracer or meter provider, everything here is a no-op: the API's
default providers record nothing. Names follow the OpenTelemetry GenAI semantic
conventions where they apply (``gen_ai.*``, ``server.*``, ``error.type``); what they do
not cover carries the ``ttstream.`` prefix.

Never recorded: image bytes or base64, prompts, keys, headers. Attributes are model
names, host and port, ids, counts, sizes, seconds and error class names.

The span, named ``"{operation} {model}"`` (kind ``CLIENT``), has the attributes
``gen_ai.operation.name`` (``image_generation``, ``image_edit``, ``image_response``),
``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.output.type`` (``image``),
``server.address``, ``server.port``, and at the end ``gen_ai.response.id``,
``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``, ``ttstream.images``, and
``error.type`` when it failed. Events: ``ttstream.preview`` (``ttstream.preview.index``,
``ttstream.image.size_bytes``), ``ttstream.image`` per final image, ``ttstream.retry``
(``ttstream.retry.attempt``, ``ttstream.retry.delay_s``, ``error.type``) and
``ttstream.reconnection`` (``ttstream.reconnection.delay_s``,
``ttstream.reconnection.regenerating``).

Metrics (meter ``ttstream``):

- ``gen_ai.client.operation.duration`` (histogram, ``s``): from request to end;
- ``gen_ai.client.token.usage`` (histogram, ``{token}``, ``gen_ai.token.type`` input or
  output);
- ``ttstream.client.time_to_first_preview`` (histogram, ``s``);
- ``ttstream.client.retries`` (counter, ``{retry}``): requests sent again before a
  stream started;
- ``ttstream.client.reconnections`` (counter, ``{reconnection}``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any

import httpx2

from ._secrets import redact
from .events import Completed, PartialImage, image_of


@functools.cache
def _opentelemetry() -> tuple[ModuleType, ModuleType] | None:
    """``opentelemetry.metrics`` and ``opentelemetry.trace``, imported at the first
    generation (not with ttstream), or ``None`` without the ``otel`` extra."""
    try:
        from opentelemetry import metrics, trace
    except ImportError:  # pragma: no cover - the otel extra is not installed
        return None
    return metrics, trace


def _api() -> tuple[ModuleType, ModuleType]:
    """:func:`_opentelemetry` where a :class:`Generation` exists, so it was found."""
    api = _opentelemetry()
    assert api is not None, "a Generation is made only with opentelemetry-api"
    return api


__all__ = ["INSTRUMENTATION", "Generation", "generation", "note_retry", "observed"]

INSTRUMENTATION = "ttstream"
"""The tracer's and the meter's name."""

_OPERATIONS = {"generation": "image_generation", "edit": "image_edit", "response": "image_response"}
_current: contextvars.ContextVar[Generation | None] = contextvars.ContextVar(
    "ttstream_generation", default=None
)


def _provider(host: str) -> str:
    if host == "ttapi.io" or host.endswith(".ttapi.io"):
        return "ttapi"
    if host.endswith((".openai.azure.com", ".cognitiveservices.azure.com")):
        return "azure.ai.openai"
    return "openai"


class _Instruments:
    """The metric instruments, created once per meter provider."""

    def __init__(self) -> None:
        meter = _api()[0].get_meter(INSTRUMENTATION)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration"
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used"
        )
        self.first_preview = meter.create_histogram(
            "ttstream.client.time_to_first_preview",
            unit="s",
            description="Seconds from the request to the first partial image",
        )
        self.retries = meter.create_counter(
            "ttstream.client.retries", unit="{retry}", description="Requests sent again"
        )
        self.reconnections = meter.create_counter(
            "ttstream.client.reconnections",
            unit="{reconnection}",
            description="Streams reconnected after they started",
        )


_instruments: tuple[object, _Instruments] | None = None


def _metrics() -> _Instruments:
    global _instruments
    provider = _api()[0].get_meter_provider()
    if _instruments is None or _instruments[0] is not provider:
        _instruments = (provider, _Instruments())
    return _instruments[1]


class Generation:
    """The telemetry of one generation: its span, from :meth:`start` to :meth:`end`."""

    def __init__(self, operation: str, model: str | None, base_url: str) -> None:
        url = httpx2.URL(base_url)  # the client's, checked by it: the parser it sends with
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        self.operation = _OPERATIONS.get(operation, operation)
        self.attributes: dict[str, Any] = {
            "gen_ai.operation.name": self.operation,
            "gen_ai.provider.name": _provider(host),
            "gen_ai.output.type": "image",
            "server.address": host,
            "server.port": port,
        }
        if model is not None:
            self.attributes["gen_ai.request.model"] = model
        self._span: Any = None
        self._started = 0.0
        self._first_preview: float | None = None
        self._input_tokens = 0
        self._output_tokens = 0
        self._usage = False
        self._images = 0
        self._response_id: str | None = None
        self._ended = False

    def start(self) -> None:
        """Starts the span and the clock (once)."""
        if self._span is not None or self._ended:
            return
        model = self.attributes.get("gen_ai.request.model")
        name = f"{self.operation} {model}" if model else self.operation
        trace = _api()[1]
        tracer = trace.get_tracer(INSTRUMENTATION)
        self._span = tracer.start_span(name, kind=trace.SpanKind.CLIENT, attributes=self.attributes)
        self._started = time.monotonic()

    def saw(self, item: object) -> None:
        """Records a delivered item: a preview, a final image or a reconnection."""
        span = self._span
        if span is None:
            return
        if isinstance(item, PartialImage):
            if self._first_preview is None:
                self._first_preview = time.monotonic() - self._started
                _metrics().first_preview.record(self._first_preview, self._metric_attributes())
            span.add_event(
                "ttstream.preview",
                {"ttstream.preview.index": item.index, **_size(item)},
            )
        elif isinstance(item, Completed):
            self._images += 1
            if item.response_id:
                self._response_id = item.response_id
            if item.usage is not None:
                self._usage = True
                self._input_tokens += item.usage.input_tokens or 0
                self._output_tokens += item.usage.output_tokens or 0
            span.add_event("ttstream.image", _size(item))
        elif hasattr(item, "regenerating"):  # a Reconnecting notice
            _metrics().reconnections.add(1, self._metric_attributes())
            span.add_event(
                "ttstream.reconnection",
                {
                    "ttstream.reconnection.delay_s": float(getattr(item, "delay", 0.0)),
                    "ttstream.reconnection.regenerating": bool(item.regenerating),
                },
            )

    def retry(self, attempt: int, delay: float, error: BaseException) -> None:
        """Records a request sent again before the stream started."""
        _metrics().retries.add(1, self._metric_attributes())
        if self._span is not None:
            self._span.add_event(
                "ttstream.retry",
                {
                    "ttstream.retry.attempt": attempt,
                    "ttstream.retry.delay_s": delay,
                    "error.type": _error_type(error),
                },
            )

    def end(self, error: BaseException | None = None, *, response_id: str | None = None) -> None:
        """Ends the span (once) with the usage, the response id, and ``error.type``
        when ``error`` is given; records the duration and token metrics."""
        span = self._span
        if self._ended or span is None:
            self._ended = True
            return
        self._ended = True
        attributes = self._metric_attributes()
        response_id = self._response_id or response_id
        if response_id:
            # the server's text (a header, an event's field): it may echo the key
            span.set_attribute("gen_ai.response.id", redact(response_id))
        span.set_attribute("ttstream.images", self._images)
        if self._usage:
            span.set_attribute("gen_ai.usage.input_tokens", self._input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", self._output_tokens)
            instruments = _metrics()
            for kind, count in (("input", self._input_tokens), ("output", self._output_tokens)):
                instruments.tokens.record(count, {**attributes, "gen_ai.token.type": kind})
        if error is not None:
            attributes["error.type"] = _error_type(error)
            span.set_attribute("error.type", attributes["error.type"])
            trace = _api()[1]
            span.set_status(trace.Status(trace.StatusCode.ERROR, attributes["error.type"]))
        _metrics().duration.record(time.monotonic() - self._started, attributes)
        span.end()

    def _metric_attributes(self) -> dict[str, Any]:
        return {
            name: self.attributes[name]
            for name in (
                "gen_ai.operation.name",
                "gen_ai.provider.name",
                "gen_ai.request.model",
                "server.address",
                "server.port",
            )
            if name in self.attributes
        }


def _size(event: PartialImage | Completed) -> dict[str, int]:
    image = image_of(event)
    return {} if image is None else {"ttstream.image.size_bytes": image.size()}


def _error_type(error: BaseException) -> str:
    return type(error).__qualname__


def generation(operation: str, model: str | None, base_url: str) -> Generation | None:
    """The telemetry of a new generation, or ``None`` without ``opentelemetry-api``."""
    if _opentelemetry() is None:
        return None
    return Generation(operation, model, base_url)


def note_retry(attempt: int, delay: float, error: BaseException) -> None:
    """Tells the generation running in this task (if any) that a request is sent again."""
    current = _current.get()
    if current is not None:
        current.retry(attempt, delay, error)


def observed(current: Generation | None) -> AbstractContextManager[object]:
    """Within it, :func:`note_retry` reports to ``current`` (in this task); ``None``:
    nothing to report to. A stream enters it once per event: it is a plain class, not a
    generator, to cost a context variable's set and reset."""
    return _NOT_OBSERVED if current is None else _Observed(current)


_NOT_OBSERVED = contextlib.nullcontext()


class _Observed:
    __slots__ = ("_current", "_token")

    def __init__(self, current: Generation) -> None:
        self._current = current

    def __enter__(self) -> None:
        self._token = _current.set(self._current)

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)
