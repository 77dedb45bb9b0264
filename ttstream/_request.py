"""Request bodies for the two endpoints: JSON, and multipart for edits with image files.

Edits take image files (a path, ``bytes``, or a binary file object) or references
(``{"image_url": ...}`` or ``{"file_id": ...}``). Files go as ``multipart/form-data``
the way the OpenAI API takes them: one ``image`` part, or repeated ``image[]`` parts for
several, and a ``mask`` part. References go as JSON the way TTAPI documents them:
``"images": [{"image_url": ...}, ...]`` and ``"mask": {...}`` (TTAPI's Images API,
docs/sse.md). Files are read into memory once per stream, off the event loop (paths
through ``anyio.Path``, file objects in a worker thread), so every retry, resume and
regeneration sends the same bytes.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Mapping, Sequence
from typing import IO, Any, TypeAlias

import anyio
import attrs

from . import params as _params
from ._exceptions import ValidationError

__all__ = [
    "Body",
    "ImageInput",
    "Upload",
    "as_list",
    "checked_body",
    "form_fields",
    "json_body",
    "load_images",
    "merge_extra_body",
    "multipart_files",
]

ImageInput: TypeAlias = "str | os.PathLike[str] | bytes | IO[bytes] | Mapping[str, str]"
"""One edit input: a file path, the file's bytes, a binary file object, or a reference
``{"image_url": url}`` / ``{"file_id": id}``."""

_REFERENCE_KEYS = frozenset({"image_url", "file_id"})
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png", "image/png"),
    (b"\xff\xd8\xff", "jpeg", "image/jpeg"),
    (b"RIFF", "webp", "image/webp"),
)


@attrs.frozen
class Upload:
    """An image file read into memory: ``content`` is the file's bytes."""

    filename: str
    content: bytes = attrs.field(repr=lambda content: f"<{len(content)} bytes>")
    content_type: str


Body: TypeAlias = "list[Upload] | list[Mapping[str, str]]"


def _sniff(content: bytes) -> tuple[str, str]:
    for signature, extension, content_type in _SIGNATURES:
        if content.startswith(signature):
            return extension, content_type
    return "bin", "application/octet-stream"


def _upload(content: bytes, name: str | None) -> Upload:
    extension, content_type = _sniff(content)
    return Upload(os.path.basename(name) if name else f"image.{extension}", content, content_type)


def _check_one(image: object, param: str) -> bool:
    """Refuses, without reading anything, an input of no known kind or a malformed
    reference; answers whether it is a reference (else a file to read).

    Raises:
        ValidationError: as :func:`check_inputs`.
    """
    if isinstance(image, Mapping):
        keys = set(image)
        if (
            len(keys) != 1
            or not keys <= _REFERENCE_KEYS
            or not isinstance(next(iter(image.values())), str)
        ):
            allowed = "a reference with exactly one of 'image_url' or 'file_id' (a string)"
            raise ValidationError(param, image, allowed)
        return True
    if isinstance(image, bytes | bytearray | memoryview | str | os.PathLike) or callable(
        getattr(image, "read", None)
    ):
        return False
    allowed = "a path, bytes, a binary file object, or {'image_url': ...} / {'file_id': ...}"
    raise ValidationError(param, image, allowed)


def check_inputs(images: Sequence[object], mask: object) -> None:
    """Checks an edit's inputs (of :func:`as_list`) as far as can be done without reading
    a file: each of a known kind, references well formed, not files mixed with references
    (the two go in different request encodings). ``client.edit`` calls it at once.

    Raises:
        ValidationError: an input of an unknown kind, a malformed reference, or files
            mixed with references.
    """
    kinds = {_check_one(image, "images") for image in images}
    if mask is not None:
        kinds.add(_check_one(mask, "mask"))
    if len(kinds) > 1:
        raise ValidationError(
            "images", "files and references mixed", "all files or all references (with mask)"
        )


async def _load_one(image: object, param: str) -> Upload | Mapping[str, str]:
    """One input of :func:`check_inputs` read: a file into memory, a reference as it is."""
    if isinstance(image, Mapping):
        return image
    if isinstance(image, bytes | bytearray | memoryview):
        return _upload(bytes(image), None)
    if isinstance(image, str | os.PathLike):
        try:
            content = await anyio.to_thread.run_sync(_read_regular_file, image)
        except OSError as exc:  # none, a directory, a device, no permission: a bad argument
            reason = exc.strerror or type(exc).__name__
            allowed = f"a path of a readable file ({reason})"
            raise ValidationError(param, os.fspath(image), allowed) from None
        return _upload(content, os.fspath(image))
    content = await anyio.to_thread.run_sync(image.read)  # type: ignore[attr-defined]
    if not isinstance(content, bytes):  # a file object may block: read in a thread
        raise ValidationError(param, image, "a file opened in binary mode ('rb')")
    return _upload(content, getattr(image, "name", None))


def _read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The content of the regular file ``path``. Opened without waiting (a pipe without a
    writer would block the open) and refused unread when it is no regular file: a
    device or a pipe has no end (``/dev/zero``) or may never answer.

    Raises:
        OSError: it cannot be opened or read, or is no regular file (``IsADirectoryError``
            for a directory).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(mode):
            reason = "not a regular file (a device, a pipe or a socket)"
            raise OSError(errno.EINVAL, reason, os.fspath(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return file.read()


def as_list(images: ImageInput | Sequence[ImageInput]) -> list[object]:
    """One input or a sequence of inputs, as a list (a ``str`` or a bytes-like object,
    ``memoryview`` included, is one)."""
    if isinstance(images, Sequence) and not isinstance(
        images, str | bytes | bytearray | memoryview
    ):
        return list(images)
    return [images]


async def load_images(
    images: Sequence[object], mask: object
) -> tuple[Body, Upload | Mapping[str, str] | None]:
    """Reads every file input (of :func:`as_list`, checked by :func:`check_inputs` when
    the call was made) into memory; references stay as they are.

    Raises:
        ValidationError: a path that cannot be read (none, a directory, a device or a
            pipe, no permission), named with the system's reason; a file object not
            opened in binary mode.
    """
    loaded = [await _load_one(image, "images") for image in images]
    loaded_mask = None if mask is None else await _load_one(mask, "mask")
    return loaded, loaded_mask  # type: ignore[return-value]


def checked_body(
    operation: _params.Operation,
    prompt: str,
    model: str,
    params: Mapping[str, Any],
    *,
    mask: object = None,
    images: Sequence[bytes | None] = (),
) -> dict[str, Any]:
    """The request as the rules see it, checked at once (before any connection):
    ``model`` (as given: the caller puts in its default for ``None``), ``prompt``, the
    API's own ``params`` and ``stream`` (when left out, the model's default:
    :func:`ttstream.params.streams_by_default`). ``mask`` and ``images`` are an edit's,
    as :func:`ttstream.params.validate` takes them; ``mask`` is not in the result. The
    one check of a request's parameters, for ``client.generate`` / ``client.edit`` and
    for ``ttstream batch``, which checks its JOBS file before anything starts.

    Raises:
        ValidationError: a parameter the model does not take (docs/models.md).
    """
    body = {"model": model, "prompt": prompt, **params}
    if body.get("stream") is None:
        body["stream"] = _params.streams_by_default(model, body)
    _params.validate(operation, model, {**body, "mask": mask}, images=images)
    return body


def merge_extra_body(body: dict[str, Any], extra_body: Mapping[str, object] | None) -> None:
    """Merges ``extra_body`` (the ``extra_body=`` of the client's methods) over the top
    level of ``body``, as it is: unchecked, for the fields and values ttstream does not
    know yet (openai's convention).

    Raises:
        ValidationError: ``extra_body`` is not a mapping with string keys, or a value
            JSON cannot write (a set, bytes, an object; NaN or an infinity, which are
            not JSON: RFC 8259, section 6).
    """
    if extra_body is None:
        return
    if not isinstance(extra_body, Mapping) or not all(isinstance(k, str) for k in extra_body):
        raise ValidationError("extra_body", extra_body, "a mapping of JSON field names")
    try:
        json.dumps(dict(extra_body), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        allowed = "values JSON can write: str, int, finite float, bool, None, lists and mappings"
        raise ValidationError("extra_body", extra_body, allowed) from exc
    body.update(extra_body)


def json_body(params: Mapping[str, Any]) -> bytes:
    """The JSON request body, compact, with the parameters that are not ``None``."""
    return json.dumps(
        {name: value for name, value in params.items() if value is not None},
        separators=(",", ":"),
    ).encode()


def form_fields(params: Mapping[str, Any]) -> dict[str, str]:
    """Multipart form fields: JSON booleans as ``true``/``false``, numbers and strings as
    text, objects and lists (``svg``, an ``extra_body`` field) as compact JSON."""
    fields = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            fields[name] = "true" if value else "false"
        elif isinstance(value, Mapping | list | tuple):
            fields[name] = json.dumps(value, separators=(",", ":"))
        else:
            fields[name] = str(value)
    return fields


def multipart_files(
    images: Sequence[Upload], mask: Upload | None
) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The file parts: ``image`` for one image, ``image[]`` repeated for several."""
    name = "image" if len(images) == 1 else "image[]"
    parts = [(name, (i.filename, i.content, i.content_type)) for i in images]
    if mask is not None:
        parts.append(("mask", (mask.filename, mask.content, mask.content_type)))
    return parts
