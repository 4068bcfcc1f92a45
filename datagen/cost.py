"""Token prices for a cost estimate (USD per million tokens: input, output).

Known models only, list prices as published by their providers in 2025; a dated snapshot, not a
bill. A model not in the table gets no estimate (tokens are still counted) unless `--price-in` and
`--price-out` are given. A model name matches the longest table entry it starts with, so dated
snapshots ("gpt-4o-mini-2024-07-18") find their family. The OpenAI Batch API bills half the list
price (`BATCH_DISCOUNT`); explicit prices are taken as what is paid.
"""

from __future__ import annotations

PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
}
BATCH_DISCOUNT = 0.5  # OpenAI Batch API: 50% of the list price, input and output


def price_for(
    model: str,
    price_in: float | None = None,
    price_out: float | None = None,
    *,
    batch: bool = False,
) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens: the explicit prices, else the table (halved for the
    Batch API), else None."""
    if price_in is not None and price_out is not None:
        return price_in, price_out
    name = model.rsplit("/", 1)[-1].lower()
    matches = [k for k in PRICES if name == k or name.startswith(k + "-")]
    if not matches:
        return None
    price = PRICES[max(matches, key=len)]
    return (price[0] * BATCH_DISCOUNT, price[1] * BATCH_DISCOUNT) if batch else price


def cost_usd(prompt_tokens: int, completion_tokens: int, price: tuple[float, float]) -> float:
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6
