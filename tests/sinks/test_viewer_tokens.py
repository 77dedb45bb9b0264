"""Viewer tokens: HMAC-SHA256 over the job key and the expiry, checked in constant time."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ttstream import ValidationError
from ttstream._browser.viewers import viewer_allowed
from ttstream.sinks import sign_viewer_token, verify_viewer_token

SECRET = b"0123456789abcdef0123456789abcdef"


def test_a_token_opens_its_own_job_only() -> None:
    token = sign_viewer_token("job-1", secret=SECRET, ttl=60)
    assert verify_viewer_token(token, "job-1", secret=SECRET)
    assert not verify_viewer_token(token, "job-2", secret=SECRET)
    assert not verify_viewer_token(token, "job-1", secret=b"another secret of 32 bytes......")


def test_an_expired_token_is_refused() -> None:
    token = sign_viewer_token("job", secret=SECRET, ttl=60)
    assert verify_viewer_token(token, "job", secret=SECRET, now=time.time() + 30)
    assert not verify_viewer_token(token, "job", secret=SECRET, now=time.time() + 120)


@pytest.mark.parametrize(
    "forged",
    ["", ".", "123", "99999999999.", "x.abc", "1" * 13 + "." + "0" * 64, "١٢٣.00", "a" * 5000],
)
def test_malformed_tokens_are_refused(forged: str) -> None:
    assert not verify_viewer_token(forged, "job", secret=SECRET)


def test_a_changed_expiry_breaks_the_signature() -> None:
    expiry, signature = sign_viewer_token("job", secret=SECRET, ttl=60).split(".")
    assert not verify_viewer_token(f"{int(expiry) + 1000}.{signature}", "job", secret=SECRET)


@pytest.mark.parametrize("secret", [b"short", "a str secret of more than 16", None])
def test_bad_secrets_are_validation_errors(secret: object) -> None:
    with pytest.raises(ValidationError, match="secret"):
        sign_viewer_token("job", secret=secret)  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), True])
def test_bad_ttls_are_validation_errors(ttl: float) -> None:
    with pytest.raises(ValidationError, match="ttl"):
        sign_viewer_token("job", secret=SECRET, ttl=ttl)


def _scope(query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    return {"type": "http", "query_string": query, "headers": headers or []}


@pytest.mark.anyio
async def test_viewer_allowed_reads_the_query_or_the_bearer_header() -> None:
    token = sign_viewer_token("job", secret=SECRET).encode()
    check = {"authorize": None, "token_secret": SECRET}
    assert await viewer_allowed(_scope(b"token=" + token), "job", **check)
    assert await viewer_allowed(
        _scope(headers=[(b"authorization", b"Bearer " + token)]), "job", **check
    )
    assert not await viewer_allowed(_scope(), "job", **check)
    assert not await viewer_allowed(_scope(b"token=" + token), "other", **check)


@pytest.mark.anyio
async def test_authorize_sync_or_async_must_say_true() -> None:
    async def only_alice(scope: dict, key: str) -> bool:
        return key.startswith("alice/")

    assert await viewer_allowed(_scope(), "alice/1", authorize=only_alice, token_secret=None)
    assert not await viewer_allowed(_scope(), "bob/1", authorize=only_alice, token_secret=None)
    assert not await viewer_allowed(_scope(), "x", authorize=lambda s, k: 1, token_secret=None)
    assert await viewer_allowed(_scope(), "x", authorize=None, token_secret=None)


def _sse_relay(**gate: object) -> object:
    from ttstream.sinks import SSERelay

    return SSERelay(job_key="j", **gate)  # type: ignore[arg-type]


def _redis_relay(**gate: object) -> object:
    coredis = pytest.importorskip("coredis")
    from ttstream.redis import RedisRelay

    # made, never entered: the settings are checked before any server is needed
    return RedisRelay(coredis.Redis(decode_responses=False), **gate)  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [_sse_relay, _redis_relay])
@pytest.mark.parametrize("secret", ["0123456789abcdef0123", b"short", 16])
def test_a_relay_refuses_a_bad_token_secret_when_it_is_made(
    make: Callable[..., object], secret: object
) -> None:
    # the check ran at the first viewer: every viewer got a 500 while the generation ran
    with pytest.raises(ValidationError, match=r"token_secret.*at least 16") as raised:
        make(token_secret=secret)
    assert "0123456789abcdef0123" not in str(raised.value)  # a secret is never shown


@pytest.mark.parametrize("make", [_sse_relay, _redis_relay])
def test_a_relay_refuses_an_authorize_that_is_not_callable(make: Callable[..., object]) -> None:
    with pytest.raises(ValidationError, match=r"authorize.*callable"):
        make(authorize="yes")
    make(authorize=lambda scope, key: True, token_secret=bytearray(SECRET))
