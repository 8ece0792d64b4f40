"""Tools the example agents use. Deterministic, so the demo and tests give the same answers."""

from __future__ import annotations

import hashlib

from baton.agents.tools import tool


@tool
def market_size(market: str, year: int = 2026) -> dict[str, float | str]:
    """Estimated size of a market in a year, in billions of US dollars, with its growth rate."""
    seed = int(hashlib.sha256(market.lower().encode()).hexdigest()[:6], 16)
    size = 5 + seed % 400 / 4
    growth = 0.03 + (seed % 17) / 100
    return {
        "market": market,
        "year": year,
        "size_usd_billion": round(size * (1 + growth) ** (year - 2026), 1),
        "annual_growth": growth,
    }


@tool
def word_count(text: str) -> int:
    """Number of words in a text."""
    return len(text.split())
