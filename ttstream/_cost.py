"""Estimated cost of a generation, in US dollars, from its token usage (docs/batch.md,
"Cost").

Prices come from ``genai-prices`` (the ``cost`` extra: ``pip install 'ttstream[cost]'``),
a price table kept by the Pydantic team from the providers' price pages and shipped as a
snapshot inside the package (no network access here). They are estimates: the table can
lag a price change, gateways (TTAPI) bill their own prices, and a server may report usage
that does not cover everything it bills. ``None`` means unknown: the extra is not
installed, the table does not know the model, or an image came without usage.
"""

from __future__ import annotations

import decimal
import functools
from collections.abc import Iterable
from typing import Any

from .events import Usage

__all__ = ["PROVIDER", "estimate_cost", "pricing_available", "usage_totals"]

PROVIDER = "openai"
"""The provider whose prices are used: the image models' maker, whatever the gateway."""


def usage_totals(usages: Iterable[Usage | None]) -> dict[str, int] | None:
    """The sums of ``input_tokens``, ``output_tokens``, ``total_tokens`` and input
    image/text tokens over ``usages``; ``None`` when any usage is missing."""
    totals: dict[str, int] = {}
    for usage in usages:
        if usage is None:
            return None
        details = usage.input_tokens_details
        for name, value in (
            ("input_tokens", usage.input_tokens),
            ("output_tokens", usage.output_tokens),
            ("total_tokens", usage.total_tokens),
            ("input_image_tokens", details.image_tokens if details else None),
            ("input_text_tokens", details.text_tokens if details else None),
        ):
            if value is not None:
                totals[name] = totals.get(name, 0) + value
    return totals


@functools.cache
def pricing_available() -> bool:
    """Whether the price table is installed (the ``cost`` extra, ``genai-prices``)."""
    try:
        import genai_prices  # noqa: F401
    except ImportError:
        return False
    return True


def estimate_cost(model: str | None, usages: Iterable[Usage | None]) -> decimal.Decimal | None:
    """The estimated price in US dollars of images of ``model`` with these usages (one
    per image), or ``None`` when unknown (see the module docstring).

    Input image tokens are priced as such when the usage splits them out
    (``input_tokens_details.image_tokens``); the rest of the input as text.
    """
    totals = usage_totals(usages)
    if model is None or not totals or "output_tokens" not in totals:
        return None
    if not pricing_available():
        return None
    return _price(
        model,
        totals.get("input_tokens", 0),
        totals["output_tokens"],
        totals.get("input_image_tokens"),
    )


@functools.lru_cache(maxsize=1024)
def _price(
    model: str, input_tokens: int, output_tokens: int, input_image_tokens: int | None
) -> decimal.Decimal | None:
    """The table's price, cached: a lookup takes about half a millisecond, and a batch
    repeats the same usage for every image of one size and quality."""
    try:
        import genai_prices
    except ImportError:
        return None
    fields: dict[str, Any] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if input_image_tokens is not None:
        fields["input_image_tokens"] = input_image_tokens
    try:
        price = genai_prices.calc_price(
            genai_prices.Usage(**fields), model_ref=model, provider_id=PROVIDER
        )
    except (LookupError, ValueError):
        return None
    total = price.total_price
    return total if isinstance(total, decimal.Decimal) else decimal.Decimal(str(total))
