"""The Responses API image tool, sans-I/O: Server-Sent Events in, image events out.

:class:`ResponsesInterpreter` follows the interpreter protocol of
:class:`~ttstream.ImageStream` (``handle(sse)``, ``done``, ``incomplete()``) and turns the
events of a ``POST /responses`` stream (or of its resumption,
``GET /responses/{id}?stream=true&starting_after=N``) into the :class:`PartialImage` and
:class:`Completed` events of the Images API, with ``operation="response"`` and the item's
``item_id``, ``output_index``, the ``response_id`` and, on ``Completed``, the
``revised_prompt``. The rules, and the shapes they come from (the official SDK's
``openai.types.responses`` and public recordings of OpenAI and Azure streams), are in
docs/responses.md:

- one ``Completed`` per image item, from ``response.output_item.done`` or
  ``response.image_generation_call.completed`` when that one carries the image, whichever
  comes first, never both; never from the copy inside ``response.completed``, whose image
  strings are cut out before the JSON is parsed (and are never base64-decoded);
- a ``response.image_generation_call.partial_image`` is a :class:`PartialImage`, asked
  for or not;
- an ``error`` event (nested or flat), ``response.failed``, ``response.incomplete``, a
  ``response.completed`` whose response's ``status`` is not ``completed``, and an image
  item whose status is ``failed`` raise :class:`~ttstream.StreamError`;
- events whose ``sequence_number`` is not above the last one seen are replays (a resumed
  stream) and are skipped, so each event is delivered once; except the two events that
  carry an item's image, which a late arrival must not lose: an image not delivered yet
  is delivered from them whatever their ``sequence_number`` (above ``starting_after``),
  and an image item is delivered once whatever the number of events carrying it; and
  except the ends (an ``error`` event, ``response.failed``, ``.incomplete``,
  ``.completed``), never replays of one seen here (the stream raised or ended there);
- an image item that the stream never announced nor delivered, found only inside
  ``response.completed``, is delivered from there (one such item; several raise
  :class:`~ttstream.MalformedEventError`): a stream never ends successfully without an
  image the server sent. Not after ``starting_after``: the events before it were handled
  elsewhere, that image's included;
- at most :data:`MAX_IMAGE_ITEMS` image items per response, each id at most
  :data:`MAX_ITEM_ID_CHARS` characters: what is kept until the end is bounded (more is
  :class:`~ttstream.MalformedEventError`);
- an empty image string (``"result": ""``, ``"partial_image_b64": ""``) is
  :class:`~ttstream.MalformedEventError`, as an empty ``b64_json`` of the Images API;
- after ``response.completed``, :attr:`ResponsesInterpreter.response` is the final
  response without its images.

No I/O, no clock: bytes-to-events is :class:`~ttstream.SSEDecoder`'s job, connections are
:class:`~ttstream.ImageStream`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from ._exceptions import MalformedEventError, StreamError, short_repr, shorten
from ._fields import Fields, error_event, stream_error, text_of
from ._imagehook import decoded_data
from ._json import loads
from ._jsonfast import loads_cutting
from ._secrets import redact
from .events import Completed, PartialImage, Usage, parse_usage, take_image
from .sse import ServerSentEvent

__all__ = ["MAX_IMAGE_ITEMS", "MAX_ITEM_ID_CHARS", "OPERATION", "Response", "ResponsesInterpreter"]

OPERATION = "response"
"""The ``operation`` of every image event of the Responses API image tool."""
MAX_IMAGE_ITEMS = 1000
"""The most image items one response may name: the interpreter keeps a few bytes per
item (its id, its ``output_index``, whether its image went out) until the end."""
MAX_ITEM_ID_CHARS = 256
"""The longest image item id, in characters (the API's ``ig_...`` ids are about 50)."""

_IMAGE_ITEM = "image_generation_call"
_PARTIAL = "response.image_generation_call.partial_image"
_PARTIAL_KEY = "partial_image_b64"
_CALL_COMPLETED = "response.image_generation_call.completed"
_ITEM_ADDED = "response.output_item.added"
_ITEM_DONE = "response.output_item.done"
_COMPLETED = "response.completed"
_FAILED = "response.failed"
_INCOMPLETE = "response.incomplete"
_TERMINAL = (_COMPLETED, _FAILED, _INCOMPLETE)
# Handled even at or below the last sequence_number (above starting_after): the two
# events carrying an image, and the ends (an error event too).
_NEVER_REPLAYS = (_ITEM_DONE, _CALL_COMPLETED, *_TERMINAL)
_IMAGE_FIELDS = ("size", "quality", "background", "output_format")
# The image strings of a response.completed: a "result" member whose value is a string.
# Base64 holds no quote and no backslash, so its closing quote is the next '"'.
_RESULT_MEMBER = re.compile(r'"result"[ \t\n\r]*:[ \t\n\r]*"')
_ELIDE_FROM = 64 * 1024  # smaller data is parsed as it is
_PEEK = 256  # the type of a large event is looked for in its first characters
_TYPE_IN_HEAD = re.compile(r'"type"[ \t\n\r]*:[ \t\n\r]*"([^"\\]*)"')


@attrs.frozen(kw_only=True)
class Response:
    """The final response of a Responses API stream, without its images.

    ``id`` is ``resp_...``; ``status`` ``completed`` (or what the server said);
    ``output_text`` the text of its ``message`` items joined; ``usage`` the text model's
    tokens (the image tool's are not in it); ``output`` the output items as JSON objects,
    each image item's ``result`` replaced by ``None`` (the image itself came as a
    :class:`Completed` event), any other ``result`` kept; ``extra`` the other members of
    the response object.
    """

    # Server text: a server-echoed key redacted, then shortened.
    id: str | None = attrs.field(repr=lambda text: shorten(repr(text), 80))
    status: str | None = attrs.field(repr=lambda text: shorten(repr(text), 80))
    model: str | None = attrs.field(default=None, repr=lambda text: shorten(repr(text), 80))
    # Server text: shortened, a server-echoed key redacted before the cut.
    output_text: str = attrs.field(default="", repr=lambda text: shorten(repr(text), 200))
    usage: Usage | None = None
    output: tuple[Mapping[str, Any], ...] = attrs.field(
        default=(), repr=lambda items: shorten(repr(items), 400)
    )
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.define
class _Item:
    """What is known of one image item: where it is, whether its image went out."""

    output_index: int | None
    delivered: bool = False


class ResponsesInterpreter:
    """Turns the events of one Responses API stream into image events (see the module).

    Feed every :class:`ServerSentEvent` of the body, in order, to :meth:`handle`; a
    resumed stream's events go to the same interpreter, which skips what it delivered.
    ``last_sequence_number`` is the ``starting_after`` that resumes the stream after the
    last event handled; ``response_id`` the id from the first event that named it.

    Args:
        response_id: the response being resumed, when known before its first event.
        starting_after: events up to this ``sequence_number`` were handled elsewhere (by
            a process that stopped): they are skipped as replays.
    """

    def __init__(self, *, response_id: str | None = None, starting_after: int | None = None):
        self._reset(response_id, starting_after)

    def _reset(self, response_id: str | None, starting_after: int | None) -> None:
        self.last_sequence_number: int | None = starting_after
        self._handled_elsewhere = starting_after  # events up to it never count here
        self.response_id: str | None = response_id
        self._items: dict[str, _Item] = {}
        self.response: Response | None = None
        """The final response (without images) once ``response.completed`` arrived."""
        self.done = False
        """True once ``response.completed`` arrived: nothing more is expected."""

    def __repr__(self) -> str:
        return redact(  # the response id is server text: it may echo the key
            f"<ResponsesInterpreter response_id={self.response_id!r} "
            f"last_sequence_number={self.last_sequence_number!r} done={self.done}>"
        )

    def restart(self) -> None:
        """The request is sent again from the start: a new response, whose events are
        all expected (nothing of the old one is kept)."""
        self._reset(None, None)

    def incomplete(self) -> str | None:
        """Why an end of the body now would be a failure, worded to follow "the body
        ended" (``"while image item ig_1 was still generating"``), or ``None`` once
        done."""
        if self.done:
            return None
        pending = [item_id for item_id, item in self._items.items() if not item.delivered]
        if pending:
            return f"while image item {pending[0]} was still generating"
        if self.last_sequence_number is None:
            return "before the response sent any event"
        last = self.last_sequence_number
        return f"before {_COMPLETED} (last sequence_number {last})"

    def handle(self, sse: ServerSentEvent) -> PartialImage | Completed | None:
        """The image event ``sse`` carries, or ``None`` (progress, text, replays).

        Raises:
            StreamError: an ``error`` event, ``response.failed``, ``response.incomplete``,
                ``response.completed`` with a ``status`` other than ``completed``, or an
                image item done with status ``failed``.
            MalformedEventError: data that is not a JSON object, a known field of the
                wrong type, an image item without its image, or ``response.completed``
                before every image item was done.
        """
        decoded = decoded_data(sse)
        if decoded is not None and decoded.key == _PARTIAL_KEY:
            # Decoded while it arrived: keep the bytes, never encode them back to text.
            obj: dict[str, Any] = dict(decoded.members)
            obj[_PARTIAL_KEY] = decoded.image
        else:
            data = sse.data
            if not data.strip() or data == "[DONE]":
                return None
            obj = _loads(data, sse)
        kind = obj.get("type", sse.event)
        if not isinstance(kind, str):
            raise _malformed(sse, f"field 'type' should be str, got {short_repr(kind, 40)}")
        is_error = kind == "error" or sse.event == "error"
        sequence = _fields(obj, sse).peek("sequence_number", int)
        if sequence is not None:
            if self.last_sequence_number is not None and sequence <= self.last_sequence_number:
                floor = self._handled_elsewhere
                if (kind not in _NEVER_REPLAYS and not is_error) or (
                    floor is not None and sequence <= floor
                ):
                    return None  # a replay after a resume: delivered already
                # An image event that arrived late (or again): its image, if not
                # delivered yet, must not be lost; _image_done delivers it once. An
                # error or an end: never one this interpreter saw (it raised or ended).
            else:
                self.last_sequence_number = sequence
        response = obj.get("response")
        if isinstance(response, Mapping) and self.response_id is None:
            self.response_id = _fields(response, sse).peek("id", str)
        if is_error:
            raise self._error_event(obj, sequence)
        if kind == _PARTIAL:
            return self._partial(obj, sse)
        if kind == _ITEM_ADDED:
            self._item_added(obj, sse)
        elif kind in (_ITEM_DONE, _CALL_COMPLETED):
            return self._image_done(kind, obj, sse)
        elif kind in _TERMINAL:
            return self._terminal(kind, obj, sequence, sse)
        return None

    def _item_added(self, obj: Mapping[str, Any], sse: ServerSentEvent) -> None:
        event = _fields(obj, sse)
        item = event.required("item", dict)
        if item.get("type") == _IMAGE_ITEM:
            item_id = _fields(item, sse).required("id", str)
            self._item(item_id, event.peek("output_index", int), sse)

    def _item(self, item_id: str, output_index: int | None, sse: ServerSentEvent) -> _Item:
        """What is known of image item ``item_id``, a new one from its first event.

        Raises:
            MalformedEventError: an id longer than :data:`MAX_ITEM_ID_CHARS`, or one
                image item more than :data:`MAX_IMAGE_ITEMS`.
        """
        state = self._items.get(item_id)
        if state is not None:
            return state
        if len(item_id) > MAX_ITEM_ID_CHARS:
            raise _malformed(
                sse,
                f"image item id {short_repr(item_id, 40)} is {len(item_id)} characters "
                f"long; at most {MAX_ITEM_ID_CHARS} are allowed",
            )
        if len(self._items) >= MAX_IMAGE_ITEMS:
            raise _malformed(
                sse,
                f"image item {short_repr(item_id, 40)} is one more than the "
                f"{MAX_IMAGE_ITEMS} image items allowed in a response",
            )
        state = self._items[item_id] = _Item(output_index)
        return state

    def _partial(self, obj: Mapping[str, Any], sse: ServerSentEvent) -> PartialImage:
        fields = _fields(obj, sse)
        fields.pop("type")
        item_id = fields.take("item_id", str)
        if item_id is not None:
            self._item(item_id, fields.peek("output_index", int), sse)
        image = take_image(fields, _PARTIAL_KEY, required=True)
        return PartialImage(
            b64_json=image,
            index=fields.required("partial_image_index", int),
            operation=OPERATION,
            item_id=item_id,
            output_index=fields.take("output_index", int),
            response_id=self.response_id,
            sequence_number=fields.take("sequence_number", int),
            **_image_fields(fields),
            extra=fields.extra(),
        )

    def _image_done(
        self, kind: str, obj: Mapping[str, Any], sse: ServerSentEvent
    ) -> Completed | None:
        """``response.output_item.done`` (the item, with its ``result``) or
        ``response.image_generation_call.completed`` (which may carry ``result``)."""
        event = _fields(obj, sse)
        if kind == _ITEM_DONE:
            item = event.required("item", dict)
            if item.get("type") != _IMAGE_ITEM:
                return None
        else:
            item = {"id": obj.get("item_id"), **obj}
        fields = _fields(item, sse)
        item_id = fields.required("id", str)
        fields.pop("item_id")
        fields.pop("type")
        state = self._item(item_id, _fields(obj, sse).peek("output_index", int), sse)
        status = fields.peek("status", str)  # kept in extra: Azure's differs
        if status == "failed":
            raise self._item_error(item_id, item.get("error"), obj)
        result = fields.take("result", str)
        if state.delivered:
            return None  # the other of the two events delivered it: never both
        if result is None:
            if kind == _CALL_COMPLETED:
                return None  # the image comes with response.output_item.done
            raise _malformed(sse, f"image item {item_id} is done without its 'result'")
        if not result:
            raise _malformed(
                sse, f"image item {item_id} has an empty 'result': an image is at least one byte"
            )
        state.delivered = True
        output_index = event.peek("output_index", int)
        fields.pop("output_index")
        return Completed(
            b64_json=result,
            operation=OPERATION,
            item_id=item_id,
            output_index=state.output_index if output_index is None else output_index,
            response_id=self.response_id,
            sequence_number=event.peek("sequence_number", int),
            revised_prompt=fields.take("revised_prompt", str),
            **_image_fields(fields),
            extra={key: value for key, value in fields.extra().items() if key != "sequence_number"},
        )

    def _terminal(
        self, kind: str, obj: Mapping[str, Any], sequence: int | None, sse: ServerSentEvent
    ) -> Completed | None:
        body = _fields(obj, sse).required("response", dict)
        if kind == _FAILED:
            error = body.get("error")
            raise stream_error(
                error if isinstance(error, Mapping) else {},
                fallback=f"the server sent {kind} without a message",
                default_type=kind,
                sequence_number=sequence,
                response_id=self.response_id,
            )
        if kind == _INCOMPLETE:
            details = body.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, Mapping) else None
            raise StreamError(
                f"the response is incomplete: {reason or 'no reason given'}",
                code=None if reason is None else str(reason),
                type=kind,
                sequence_number=sequence,
                response_id=self.response_id,
            )
        status = _fields(body, sse).peek("status", str)
        if status not in (None, "completed"):
            error = body.get("error")
            detail = text_of(error, "message") if isinstance(error, Mapping) else None
            raise StreamError(
                f"{kind} says the response's status is {short_repr(status, 40)}, "
                f"not 'completed'" + ("" if detail is None else f": {detail}"),
                code=status,
                type=kind,
                sequence_number=sequence,
                response_id=self.response_id,
            )
        pending = [item_id for item_id, item in self._items.items() if not item.delivered]
        if pending:
            raise _malformed(sse, f"{_COMPLETED} arrived before image item {pending[0]} was done")
        unannounced = self._unannounced_image(body, sse)
        self.response = _summary(body, sse)
        self.done = True
        return unannounced

    def _unannounced_image(self, body: Mapping[str, Any], sse: ServerSentEvent) -> Completed | None:
        """The image of an image item that ``response.completed`` holds but the stream
        never announced nor delivered, or ``None`` when there is none.

        Raises:
            MalformedEventError: several such items (one event delivers one image).
        """
        output = body.get("output")
        if not isinstance(output, list) or self._handled_elsewhere is not None:
            # Resumed after events another process handled: an item it did not see here
            # may be one whose image went out there (the caller said so).
            return None
        missing = [
            index
            for index, item in enumerate(output)
            if isinstance(item, Mapping)
            and item.get("type") == _IMAGE_ITEM
            and (not isinstance(item.get("id"), str) or item["id"] not in self._items)
        ]  # an id that is not a string is refused by _image_done, as malformed
        if not missing:
            return None
        if len(missing) > 1:
            ids = ", ".join(str(output[index].get("id")) for index in missing[:5])
            raise _malformed(
                sse,
                f"{_COMPLETED} holds {len(missing)} image items the stream never announced "
                f"nor delivered ({ids}): their images cannot be delivered one by one",
            )
        [index] = missing
        item = output[index]
        if item.get("result") is None and _RESULT_MEMBER.search(sse.data) is not None:
            full = _loads_whole(sse.data, sse)  # the image strings were cut out: parse again
            response = full.get("response")
            if isinstance(response, Mapping) and isinstance(response.get("output"), list):
                item = response["output"][index]
        done = {"type": _ITEM_DONE, "item": item, "output_index": index}
        return self._image_done(_ITEM_DONE, done, sse)

    def _error_event(self, obj: Mapping[str, Any], sequence: int | None) -> StreamError:
        return error_event(
            obj,
            fallback="the server sent an error event without a message",
            flat_type=True,
            sequence_number=sequence,
            response_id=self.response_id,
        )

    def _item_error(self, item_id: str, error: object, obj: Mapping[str, Any]) -> StreamError:
        sequence = obj.get("sequence_number")
        return stream_error(
            error if isinstance(error, Mapping) else {},
            fallback=f"image item {item_id} failed",
            default_type="image_generation_call.failed",
            sequence_number=sequence if isinstance(sequence, int) else None,
            response_id=self.response_id,
        )


def _loads(data: str, sse: ServerSentEvent) -> dict[str, Any]:
    """The JSON object of ``data``; for a large ``response.completed``, with the image
    strings cut out first (:func:`loads_without_results`), unless a ``"result"`` string
    cut was not an image item's: then parsed whole."""
    if len(data) >= _ELIDE_FROM and _peek_type(data, sse) == _COMPLETED:
        obj = loads_without_results(data)
        if isinstance(obj, dict) and _nulls_only_images(obj):
            return obj
    return _loads_whole(data, sse)


def _nulls_only_images(obj: dict[str, Any]) -> bool:
    """Whether every ``"result": null`` of ``obj`` (a ``response.completed`` parsed
    without its ``"result"`` strings) is that of an image item of ``response.output``:
    a ``result`` anywhere else (metadata, another item) must come through whole."""
    response = obj.get("response")
    output = response.get("output") if isinstance(response, dict) else None
    images = {
        id(item)
        for item in (output if isinstance(output, list) else ())
        if isinstance(item, dict) and item.get("type") == _IMAGE_ITEM
    }
    stack: list[Any] = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "result" in value and value["result"] is None and id(value) not in images:
                return False
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return True


def _loads_whole(data: str, sse: ServerSentEvent) -> dict[str, Any]:
    """``json.loads(data)``, a JSON object, with its errors as MalformedEventError."""
    try:
        obj = loads(data)
    except ValueError as exc:
        raise _malformed(
            sse, f"data is not JSON ({exc}); data starts {short_repr(data, 60)}"
        ) from exc
    if not isinstance(obj, dict):
        raise _malformed(sse, f"data is a JSON {type(obj).__name__}, expected an object")
    return obj


def _peek_type(data: str, sse: ServerSentEvent) -> str | None:
    if sse.event and sse.event != "message":
        return sse.event
    match = _TYPE_IN_HEAD.search(data, 0, _PEEK)
    return None if match is None else match[1]


def loads_without_results(data: str) -> Any:
    """``json.loads(data)`` with the value of every ``"result"`` string member replaced
    by ``null``, without copying or scanning those strings beyond finding their closing
    quote (the JSON fast path, ``ttstream._jsonfast``); ``None`` when that cannot be
    vouched for (a ``"result"`` string holding an escape or a control character, or
    JSON that does not parse), for ``json.loads`` to decide."""
    found = loads_cutting([data], "result", keep=False)
    return None if found is None else found[0]


def _summary(body: Mapping[str, Any], sse: ServerSentEvent) -> Response:
    """The final response; its ``usage`` is the text model's ``input_tokens``,
    ``output_tokens``, ``total_tokens``, the rest (``input_tokens_details.cached_tokens``,
    ``output_tokens_details``) in ``extra``."""
    fields = _fields(body, sse)
    output = fields.take("output", list) or []
    texts = [
        part["text"]
        for item in output
        if isinstance(item, Mapping) and item.get("type") == "message"
        for part in item.get("content") or ()
        if isinstance(part, Mapping)
        and part.get("type") == "output_text"
        and isinstance(part.get("text"), str)
    ]
    return Response(
        id=fields.take("id", str),
        status=fields.take("status", str),
        model=fields.take("model", str),
        output_text="".join(texts),
        usage=parse_usage(fields, details=()),
        output=tuple(_without_result(item) for item in output if isinstance(item, Mapping)),
        extra=fields.extra(),
    )


def _without_result(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """An output item, an image item's image (``result``) replaced by ``None``: small
    responses are parsed whole, and their images dropped here. Another item's
    ``result`` is kept."""
    if item.get("type") == _IMAGE_ITEM and item.get("result") is not None:
        return {**item, "result": None}
    return item


def _image_fields(fields: Fields) -> dict[str, Any]:
    """``size``, ``quality``, ``background`` and ``output_format``, taken as text."""
    return {name: fields.take(name, str) for name in _IMAGE_FIELDS}


def _fields(obj: Mapping[str, Any], sse: ServerSentEvent) -> Fields:
    """The fields of ``obj``, a JSON object of ``sse`` (named "the event" in errors)."""
    return Fields(obj, event=sse.event, event_id=sse.id)


def _malformed(sse: ServerSentEvent, reason: str) -> MalformedEventError:
    return MalformedEventError(reason, event=sse.event, event_id=sse.id)
