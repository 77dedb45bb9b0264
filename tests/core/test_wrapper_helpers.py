"""The helpers that let a wrapper say once what it passes on (``Delegated`` attributes,
``forwards_to`` / ``with_keywords`` signatures, the sync ``Resource`` base) and the
shared setting checks (``require_int``, ``require_callable``, the Redis client check)."""

from __future__ import annotations

import inspect
from typing import TypedDict

import attrs
import pytest

from ttstream import ValidationError
from ttstream._bounds import require_int
from ttstream._checks import require_callable
from ttstream._delegate import Delegated, Settable
from ttstream._resource import Resource
from ttstream._signature import forwards_to, with_keywords
from ttstream.redis._commands import check_client


@attrs.define
class Inner:
    count: int = 0
    flag: bool = False


class Outer:
    count: Delegated[int] = Delegated("_inner")
    """The inner count."""
    flag: Settable[bool] = Settable("_inner")
    missing: Delegated[str | None] = Delegated("_inner", default=None)

    def __init__(self) -> None:
        self._inner = Inner()


def test_a_delegated_attribute_reads_through_and_is_read_only() -> None:
    outer = Outer()
    outer._inner.count = 3
    assert outer.count == 3
    with pytest.raises(AttributeError, match="'count' is read-only"):
        outer.count = 4  # type: ignore[assignment]
    assert outer._inner.count == 3
    assert isinstance(Outer.count, Delegated)  # on the class: the descriptor itself
    assert repr(Outer.count) == "<Delegated count of _inner>"


def test_a_settable_attribute_writes_through() -> None:
    outer = Outer()
    outer.flag = True
    assert outer._inner.flag is True
    assert outer.flag is True


def test_a_delegated_attribute_with_a_default_reads_it_when_missing() -> None:
    assert Outer().missing is None


def test_with_keywords_refuses_an_unknown_keyword_naming_the_method() -> None:
    def method(prompt: str, **options: object) -> tuple[str, dict[str, object]]:
        return prompt, options

    keyword = inspect.Parameter("size", inspect.Parameter.KEYWORD_ONLY, default=None)
    checked = with_keywords(method, [keyword], first=False)
    assert checked("a", size="1") == ("a", {"size": "1"})
    with pytest.raises(TypeError, match=r"method\(\) got an unexpected keyword argument 'sise'"):
        checked("a", sise="1")
    assert list(inspect.signature(checked).parameters) == ["prompt", "size"]


def target(api_key: str | None = None, *, timeout: float = 5.0, retries: int = 2) -> None:
    """What the wrapper below passes its options on to."""


def loop(backend: str = "asyncio") -> None:
    """A second target: the wrapper's own extra keywords."""


class TargetOptions(TypedDict, total=False):
    timeout: float
    retries: int
    backend: str


def test_forwards_to_takes_the_targets_keywords_with_their_defaults_in_order() -> None:
    @forwards_to(target, loop, options=TargetOptions)
    def wrapper(api_key: str | None = None, **options: object) -> dict[str, object]:
        return options

    parameters = inspect.signature(wrapper).parameters
    assert list(parameters) == ["api_key", "timeout", "retries", "backend"]
    assert [p.default for p in parameters.values()] == [None, 5.0, 2, "asyncio"]
    assert wrapper(timeout=1.0) == {"timeout": 1.0}
    with pytest.raises(TypeError, match="timout"):
        wrapper(timout=1.0)


def test_forwards_to_refuses_a_key_no_target_takes() -> None:
    class Stray(TypedDict, total=False):
        timeout: float
        colour: str

    with pytest.raises(TypeError, match=r"target\(\) takes no keyword colour"):
        forwards_to(target, options=Stray)


class Door(Resource):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_a_resource_is_closed_on_leaving_with_however_it_ends() -> None:
    with Door() as door:
        assert door.closed == 0
    assert door.closed == 1
    other = Door()
    with pytest.raises(KeyError), other:
        raise KeyError("x")
    assert other.closed == 1


def test_a_resource_must_say_how_it_closes() -> None:
    class Nothing(Resource):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Nothing()  # type: ignore[abstract]


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "2", None])
def test_require_int_refuses_what_is_no_int_at_least_the_minimum(value: object) -> None:
    with pytest.raises(ValidationError, match=r"window.*an int >= 1 \(frames\)") as info:
        require_int("window", value, 1, "frames")  # type: ignore[arg-type]
    assert info.value.param == "window"
    assert require_int("window", 1, 1, "frames") == 1
    assert require_int("retry", 0, 0) == 0


@pytest.mark.parametrize("value", [None, 5, "print", b"f"])
def test_require_callable_refuses_what_cannot_be_called_saying_what_is_allowed(
    value: object,
) -> None:
    with pytest.raises(ValidationError, match=r"fn.*a function of the item") as info:
        require_callable("fn", value, "a function of the item")
    assert info.value.param == "fn"
    assert require_callable("fn", print, "a function of the item") is print


def test_a_redis_client_that_decodes_responses_is_refused() -> None:
    class Bytes:
        async def xadd(self, *args: object) -> None: ...

    class Decoding(Bytes):
        decode_responses = True

    with pytest.raises(ValidationError, match="decode_responses=False"):
        check_client(Decoding(), ["xadd"])
    check_client(Bytes(), ["xadd"])  # a client without the attribute decodes nothing
    with pytest.raises(ValidationError, match=r"this has no xread\)"):
        check_client(Bytes(), ["xadd", "xread"])
