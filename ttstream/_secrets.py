"""Keeping API keys out of everything ttstream formats: messages, reprs, log lines.

One mechanism (docs/hostile-servers.md, "Secrets"): every :class:`~ttstream.AsyncClient`
registers its key here while it exists, and :func:`redact` takes out of a text

- every registered key of at least :data:`MIN_SECRET_CHARS` characters, wherever it
  appears, and
- the value of any ``Authorization``, ``Proxy-Authorization``, ``TT-API-KEY``,
  ``X-API-Key`` or ``api_key`` field, and any ``Bearer`` token, in the forms a server
  echoes them (``name: value``, ``"name": "value"``, ``('name', 'value')``), whatever
  the key. A comma after a name makes a field only inside a pair (``('name', ...``,
  ``["name", ...``), and a value in angle brackets is a stand-in (``<str of 7 chars, not
  shown>``), so ttstream's own wording (``one of 'auto', 'tt-api-key', 'bearer'``, ``set
  AZURE_OPENAI_API_KEY, or ...``) is left whole.

:class:`~ttstream.TTStreamError` runs its message and every ``str`` attribute through
:func:`redact` as they are set, so this holds for every ttstream error, wherever it is
built; ``APIStatusError.body`` and ``.headers`` are redacted as they are read.
:func:`install_log_filter` does the same for the ``hpack`` logger, which prints
request headers at DEBUG level under HTTP/2, the ``httpx2`` logger, which prints
each request's URL at INFO level, and the ``ttstream`` logger (tracebacks included).
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections import Counter
from collections.abc import Iterable

__all__ = [
    "CREDENTIAL_HEADERS",
    "MIN_SECRET_CHARS",
    "REDACTED",
    "hidden",
    "holds_secret",
    "install_log_filter",
    "names_a_secret",
    "redact",
    "register",
]

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 6
"""Shorter keys are not searched for as such (they would blot out ordinary words); the
header patterns still remove them from echoed headers."""

CREDENTIAL_HEADERS = (
    "authorization",
    "proxy-authorization",
    "tt-api-key",
    "x-api-key",
    "api-key",
    "api_key",
)
"""The names (lowercase) of the headers that carry a key: their values are redacted
wherever they are quoted, and they (as every name :func:`names_a_secret` recognises)
are never sent to another origin (``ttstream._connect``)."""
_SECRET_WORDS = frozenset(
    {
        "key", "apikey", "token", "secret", "auth", "authorization", "sig", "signature",
        "password", "passwd", "credential", "credentials", "cookie",
    }
)  # fmt: skip
"""Words of a header or query parameter name that say its value is a secret."""


def names_a_secret(name: str) -> bool:
    """Whether a header or query parameter named ``name`` carries a secret: one of
    :data:`CREDENTIAL_HEADERS`, or a name with a word such as ``key``, ``token``,
    ``secret``, ``sig`` or ``password`` (``Ocp-Apim-Subscription-Key``, ``X-Goog-Api-Key``,
    ``access_token``, an Azure SAS ``sig``), words split at ``-``, ``_`` and ``.``."""
    lowered = name.lower()
    if lowered in CREDENTIAL_HEADERS:
        return True
    return not _SECRET_WORDS.isdisjoint(re.split(r"[-_.]", lowered))


_NAMES = "|".join(re.escape(name) for name in sorted(CREDENTIAL_HEADERS, key=len, reverse=True))
_HEADER_VALUE = re.compile(
    r"""(?ix)
    (?P<pair> [(\[] \s* b? \\?["'] )?                  # the opening of ('name', 'value')
    (?P<name> """
    + _NAMES
    + r""" )
    (?P<separator> \\?["']? \s* (?(pair),|[:=]) \s* (?:b?\\?["'])? \s* )  # "," in a pair only
    (?: (?P<scheme> bearer|basic|token ) \s+ )?+            # a scheme (kept once seen)
    (?! (?:None|null|\.\.\.) (?:[\s"',;}\\]|$) | <[^<>\n]{1,80}> )  # no value, or <a stand-in>
    [^\s"',;}\\]+                                          # the value
    """
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
# OpenAI's key shape (``sk-...``, ``sk-proj-...``): redacted even where no client
# registered it (a key in a user's own exception, stored by RedisStreamSink).
_KEY_SHAPE = re.compile(r"(?<![A-Za-z])sk-[A-Za-z0-9_\-]{16,}")  # also after "_" or a digit
# Words one of which every credential field above contains: a fast test before the regexes.
_CREDENTIAL_WORDS = ("authorization", "api-key", "api_key", "bearer")
_LOCK = threading.Lock()
_secrets: Counter[str] = Counter()
_longest_first: tuple[str, ...] = ()
# Secrets whose owner is gone, not yet taken out: an owner's finalizer may run inside
# register() (an allocation there runs the garbage collector) or while another thread
# holds _LOCK, so it never waits for the lock; the next holder takes them out.
_released: list[str] = []


def register(owner: object, secret: str) -> None:
    """Redacts ``secret`` from every ttstream text for as long as ``owner`` exists."""
    if len(secret) < MIN_SECRET_CHARS:
        return
    with _LOCK:
        _secrets[secret] += 1
        _recompile()
    weakref.finalize(owner, _unregister, secret)


def _unregister(secret: str) -> None:
    """``owner``'s finalizer: never blocks (a key redacted a little longer is harmless;
    a finalizer waiting for a lock its own thread holds would hang it)."""
    _released.append(secret)
    if _LOCK.acquire(blocking=False):
        try:
            _recompile()
        finally:
            _LOCK.release()


def _recompile() -> None:
    """Takes the released secrets out, then orders the rest; under ``_LOCK``."""
    global _longest_first
    while _released:
        secret = _released.pop()
        _secrets[secret] -= 1
        if _secrets[secret] <= 0:
            del _secrets[secret]
    # Longest first, so a key that contains another is taken out whole.
    _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def _header(match: re.Match[str]) -> str:
    scheme = f"{match['scheme']} " if match["scheme"] else ""
    return f"{match['pair'] or ''}{match['name']}{match['separator']}{scheme}{REDACTED}"


def _names_a_credential(text: str) -> bool:
    """Whether one of :data:`_CREDENTIAL_WORDS` occurs, in any case; the text is lowered
    64 KiB at a time (with an overlap), so no copy of a long text is made."""
    step, overlap = 64 * 1024, max(map(len, _CREDENTIAL_WORDS))
    for start in range(0, len(text), step):
        piece = text[start : start + step + overlap].lower()
        if any(word in piece for word in _CREDENTIAL_WORDS):
            return True
    return False


_KEY_SHAPE_BYTES = re.compile(_KEY_SHAPE.pattern.encode())


def holds_secret(pieces: Iterable[bytes]) -> bool:
    """Whether the bytes of ``pieces`` joined hold a registered key or a string shaped
    like an OpenAI key (what :func:`redact` takes out of a text), in UTF-8: for a text
    kept in pieces and never joined (an image's base64, where a server may echo the key,
    cannot be redacted without breaking it). Each piece is searched with the end of the
    one before, so a key cut between two pieces is found too."""
    secrets = [secret.encode("utf-8", "surrogatepass") for secret in _longest_first]
    overlap = max(len(secret) for secret in secrets) if secrets else 0
    overlap = max(overlap, 64)  # an sk- key cut between pieces: its first 64 bytes
    tail = b""
    for piece in pieces:
        window = tail + piece[: overlap - 1] if tail else piece
        for text in (window, piece) if tail else (piece,):
            if any(secret in text for secret in secrets):
                return True
            # "-" first: one memchr, and never in standard base64 ("sk-" is slower)
            if b"-" in text and b"sk-" in text and _KEY_SHAPE_BYTES.search(text):
                return True
        tail = piece[-(overlap - 1) :]
    return False


def redact(text: str) -> str:
    """``text`` without registered keys, without strings shaped like OpenAI keys
    (``sk-`` and 16 or more key characters) and without the values of credential fields.

    Linear in ``text``: substring searches first, the regexes only where a credential
    field's name occurs."""
    for secret in _longest_first:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "sk-" in text:
        text = _KEY_SHAPE.sub(REDACTED, text)
    if not _names_a_credential(text):
        return text
    text = _HEADER_VALUE.sub(_header, text)
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


class _Hidden:
    """A value not shown in a message (it may be a key): only its type and length."""

    def __init__(self, value: object) -> None:
        size = f" of {len(value)} chars" if isinstance(value, str) else ""
        self._text = f"<{type(value).__name__}{size}, not shown>"

    def __repr__(self) -> str:
        return self._text


def hidden(value: object) -> object:
    """A stand-in for ``value`` in a :class:`~ttstream.ValidationError`, for parameters
    where a key passed by mistake would otherwise be echoed (``auth=``)."""
    return _Hidden(value)


class _RedactingFilter(logging.Filter):
    """Redacts the records of the ``hpack`` loggers, which log each header they encode
    (``Adding b'tt-api-key'=b'...'``; h2 marks only ``authorization`` sensitive) and
    each encoded header block (the key, Huffman-coded) at DEBUG level, of the
    ``httpx2`` logger, whose INFO line of each request quotes its URL (a secret of a
    ``default_query``, a resume URL's echoed id), and of the ``ttstream`` logger, whose
    records may carry an application's traceback (``serve_generations``). A record's
    traceback is formatted here (``exc_text``, which handlers then print as it is) and
    redacted too."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.msg == "Encoded header block to %s" and record.args:
            record.args = (f"<{len(record.args[0])} bytes>",)  # type: ignore[index, arg-type]
            return True
        message = record.getMessage()
        cleaned = redact(_HEADER_BYTES.sub(r"\1=b'" + REDACTED + "'", message))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_HEADER_BYTES = re.compile(rf"(?i)(b'(?:{_NAMES})')=b'[^']*'")
_TRACEBACKS = logging.Formatter()  # formats a record's traceback, as handlers would
_FILTER = _RedactingFilter()


def install_log_filter() -> None:
    """Adds the redacting filter to the ``hpack``, ``httpx2`` and ``ttstream`` loggers
    (once; idempotent). A logger's filters see only its own records, not its
    children's: ttstream logs to ``ttstream`` itself."""
    for name in ("hpack.hpack", "hpack.table", "httpx2", "ttstream"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
