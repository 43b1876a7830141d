"""CO2e of electricity: grid emission factors per country, with source and year.

The default table is shipped as code (no data file to package) and can be overridden per site
(``grid_factor(..., overrides=...)`` or an explicit ``kg_per_kwh``). Each value is the
*location-based* average grid factor that the named authority publishes for scope-2
reporting. Factors change every year: check the value against the current publication
before reporting externally (``docs/decisions/0103-grid-emission-factors.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["GRID_FACTORS", "TIMEZONE_COUNTRY", "GridFactor", "co2e_kg", "grid_factor"]


@dataclass(frozen=True, slots=True)
class GridFactor:
    """kg CO2e per kWh of grid electricity, for a data year, from a source."""

    country: str
    kg_per_kwh: float
    year: int
    source: str


GRID_FACTORS: dict[str, GridFactor] = {
    "TW": GridFactor(
        "TW",
        0.494,
        2023,
        "Energy Administration, Ministry of Economic Affairs (Taiwan): electricity emission "
        "factor for 2023 (published 2024)",
    ),
    "MY": GridFactor(
        "MY",
        0.758,
        2021,
        "Energy Commission (Suruhanjaya Tenaga), Malaysia: grid emission factor, Peninsular "
        "Malaysia",
    ),
    "JP": GridFactor(
        "JP",
        0.434,
        2021,
        "Ministry of the Environment, Japan: national average emission factor of electricity "
        "suppliers (FY2021 results)",
    ),
    "KR": GridFactor(
        "KR",
        0.4594,
        2021,
        "Greenhouse Gas Inventory and Research Center of Korea (GIR): national grid emission "
        "factor (notice of 2021)",
    ),
    "CN": GridFactor(
        "CN",
        0.5703,
        2022,
        "Ministry of Ecology and Environment, China: national average electricity CO2 emission "
        "factor for 2022 (published 2024)",
    ),
}
"""Default grid emission factors (kg CO2e/kWh). Verify against the source before use in
external reports; override per site when the site buys from a specific supplier."""

TIMEZONE_COUNTRY: dict[str, str] = {
    "Asia/Taipei": "TW",
    "Asia/Kuala_Lumpur": "MY",
    "Asia/Kuching": "MY",
    "Asia/Tokyo": "JP",
    "Asia/Seoul": "KR",
    "Asia/Shanghai": "CN",
    "Asia/Chongqing": "CN",
    "Asia/Harbin": "CN",
    "Asia/Urumqi": "CN",
}
"""The country of a site's IANA time zone, for picking a default factor."""


def grid_factor(
    country_or_timezone: str, overrides: Mapping[str, GridFactor] | None = None
) -> GridFactor:
    """The factor for a country code or a site's time zone; ``overrides`` win.

    >>> grid_factor("Asia/Taipei").kg_per_kwh
    0.494
    >>> grid_factor("JP", {"JP": GridFactor("JP", 0.4, 2024, "my supplier")}).source
    'my supplier'
    """
    key = TIMEZONE_COUNTRY.get(country_or_timezone, country_or_timezone).upper()
    table = {**GRID_FACTORS, **(overrides or {})}
    if key not in table:
        known = ", ".join(sorted(table))
        raise KeyError(f"no grid emission factor for {country_or_timezone!r}; known: {known}")
    return table[key]


def co2e_kg(kwh: float, factor: GridFactor) -> float:
    """kg CO2e of ``kwh`` of grid electricity."""
    return kwh * factor.kg_per_kwh
