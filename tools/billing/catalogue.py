"""The one catalogue of what Levqor sells: plans (monthly and yearly prices, included credits, seats)
and one-off credit packs. Prices are integer minor units (US cents).

The simulator, the advisor, the billing page and the webhook amount checks all read this module;
Stripe prices are addressed by their ``lookup_key`` (``levqor_<plan>_<interval>``, ``levqor_pack_<id>``)
so the same catalogue maps onto a Stripe account without storing Stripe price ids here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

CURRENCY = "usd"
Interval = Literal["month", "year"]
INTERVALS: tuple[Interval, ...] = ("month", "year")


@dataclass(frozen=True)
class Plan:
    """A plan. ``per_seat`` plans multiply price and included credits by the seat count."""

    id: str
    name: str
    monthly_minor: int
    yearly_minor: int
    included_credits: int  # per month of the billing period (a yearly invoice grants 12x)
    per_seat: bool = False
    min_seats: int = 1
    max_seats: int = 1

    @property
    def limits(self) -> dict[str, Any]:
        """The plan's API rate limits and monthly quota, from the one table in settings (``api_tiers``,
        which the developer portal enforces); billing keeps no second copy."""
        from levqor.settings import get_settings

        tiers = get_settings().api_tiers
        tier = tiers.get(self.id) or tiers["free"]
        return tier.model_dump()

    @property
    def paid(self) -> bool:
        return self.monthly_minor > 0

    def price_minor(self, interval: Interval, seats: int = 1) -> int:
        """The list price of one billing period for ``seats`` seats."""
        unit = self.monthly_minor if interval == "month" else self.yearly_minor
        return unit * (seats if self.per_seat else 1)

    def credits_for_period(self, interval: Interval, seats: int = 1) -> int:
        """Credits one paid invoice of this plan grants."""
        months = 1 if interval == "month" else 12
        return self.included_credits * months * (seats if self.per_seat else 1)

    def monthly_value_minor(self, interval: Interval, seats: int = 1) -> int:
        """This subscription's contribution to MRR (a yearly price spread over 12 months, floored)."""
        return self.price_minor(interval, seats) // (1 if interval == "month" else 12)

    def lookup_key(self, interval: Interval) -> str:
        return f"levqor_{self.id}_{interval}"


@dataclass(frozen=True)
class CreditPack:
    id: str
    name: str
    credits: int
    price_minor: int

    @property
    def lookup_key(self) -> str:
        return f"levqor_pack_{self.id}"


PLANS: dict[str, Plan] = {p.id: p for p in (
    Plan("free", "Free", 0, 0, included_credits=200),
    Plan("pro", "Pro", 2900, 29000, included_credits=5_000),
    Plan("business", "Business", 9900, 99000, included_credits=25_000),
    Plan("enterprise", "Enterprise (per seat)", 4900, 49000, included_credits=4_000, per_seat=True,
         min_seats=5, max_seats=10_000),
)}
PAID_PLANS: tuple[str, ...] = tuple(p.id for p in PLANS.values() if p.paid)

CREDIT_PACKS: dict[str, CreditPack] = {c.id: c for c in (
    CreditPack("small", "1,000 credits", 1_000, 1_000),
    CreditPack("medium", "5,000 credits", 5_000, 4_500),
    CreditPack("large", "20,000 credits", 20_000, 16_000),
)}


def plan(plan_id: str) -> Plan:
    """The plan ``plan_id`` (KeyError when the catalogue has no such plan)."""
    return PLANS[plan_id]


def plan_by_lookup_key(key: str) -> tuple[Plan, Interval] | None:
    for p in PLANS.values():
        for interval in INTERVALS:
            if p.lookup_key(interval) == key:
                return p, interval
    return None


def pack_by_lookup_key(key: str) -> CreditPack | None:
    return next((c for c in CREDIT_PACKS.values() if c.lookup_key == key), None)


def list_prices_minor() -> dict[str, int]:
    """Monthly list price of every paid plan (per seat for per-seat plans): what the simulator prices."""
    return {p.id: p.monthly_minor for p in PLANS.values() if p.paid}
