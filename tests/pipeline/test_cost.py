"""ImageStream.cost: estimated US dollars from the stream's usage and genai-prices."""

from __future__ import annotations

import decimal
import sys

import pytest

import ttstream
from ttstream._cost import estimate_cost, usage_totals
from ttstream.events import InputTokensDetails, Usage

pytestmark = pytest.mark.anyio

pytest.importorskip("genai_prices")


async def test_a_stream_knows_its_cost_after_the_end(ttstream_client: ttstream.AsyncClient) -> None:
    async with ttstream_client.generate("a kite", model="gpt-image-1", size="1024x1024") as stream:
        assert stream.cost is None  # nothing delivered yet
        events = [event async for event in stream]
    usage = events[-1].usage  # type: ignore[union-attr]
    assert usage is not None
    assert stream.cost == estimate_cost("gpt-image-1", [usage])
    assert isinstance(stream.cost, decimal.Decimal)
    assert stream.cost > 0


def test_the_price_is_the_tables() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    # gpt-image-1: $5 per million input (text) tokens, $40 per million output tokens.
    assert estimate_cost("gpt-image-1", [usage]) == decimal.Decimal(45)
    with_images = Usage(
        input_tokens=1_000_000,
        output_tokens=0,
        input_tokens_details=InputTokensDetails(image_tokens=1_000_000, text_tokens=0),
    )
    assert estimate_cost("gpt-image-1", [with_images]) == decimal.Decimal(10)


def test_unknown_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = Usage(input_tokens=10, output_tokens=10)
    assert estimate_cost("no-such-model", [usage]) is None
    assert estimate_cost("gpt-image-1", [usage, None]) is None  # an image without usage
    assert estimate_cost(None, [usage]) is None
    assert usage_totals([usage, usage]) == {"input_tokens": 20, "output_tokens": 20}
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # the extra is not installed
    assert estimate_cost("gpt-image-1", [usage]) is None
