"""A partner's revenue statement: per period, plugin and kind, the gross, platform fee, share and payout."""

from __future__ import annotations

import csv
import io

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from memory.partner.models import Partner, RevenueEntry
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.partner_api.access import own_partner
from tools.partner_api.revenue import PERIOD, partner_share
from tools.registry import tool


class StatementLine(BaseModel):
    period: str
    plugin: str
    kind: str
    quantity: int
    gross_minor: int
    platform_fee_minor: int
    partner_share_minor: int
    payout_id: int | None
    payout_status: str


class Statement(BaseModel):
    partner_id: int
    partner: str
    period: str | None
    currency: str
    lines: list[StatementLine]
    gross_minor: int
    platform_fee_minor: int
    partner_share_minor: int
    paid_minor: int


class StatementQuery(BaseModel):
    period: str | None = Field(None, pattern=PERIOD)


@tool("payouts.statement", risk="read")
def statement(ctx: ToolContext, params: StatementQuery) -> Statement:
    """The partner's revenue statement: per plugin and kind, gross, platform fee, share and payout."""
    partner = own_partner(ctx)
    return build_statement(ctx.session, partner, params.period)


def build_statement(session: Session, partner: Partner, period: str | None) -> Statement:
    repo = PartnerRepository(session)
    plugins = {p.id: p.slug for p in repo.plugins(partner_id=partner.id)}
    payouts = {p.id: p for p in repo.payouts(partner_id=partner.id)}
    groups: dict[tuple[str, str, str, int | None], list[RevenueEntry]] = {}
    for e in repo.revenue(partner_id=partner.id, period=period):
        groups.setdefault((e.period, plugins.get(e.plugin_id, str(e.plugin_id)), e.kind, e.payout_id), []).append(e)
    lines = []
    for (per, slug, kind, payout_id), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        gross = sum(r.amount_minor for r in rows)
        share = sum(partner_share(r.amount_minor, r.share_bps) for r in rows)
        status = payouts[payout_id].status if payout_id in payouts else "unpaid"
        lines.append(StatementLine(period=per, plugin=slug, kind=kind, quantity=sum(r.quantity for r in rows),
                                   gross_minor=gross, platform_fee_minor=gross - share, partner_share_minor=share,
                                   payout_id=payout_id, payout_status=status))
    paid = sum(p.amount_minor for p in payouts.values() if p.status in ("transferred", "paid")
               and (period is None or p.period == period))
    return Statement(partner_id=partner.id, partner=partner.display_name, period=period, currency="usd", lines=lines,
                     gross_minor=sum(ln.gross_minor for ln in lines),
                     platform_fee_minor=sum(ln.platform_fee_minor for ln in lines),
                     partner_share_minor=sum(ln.partner_share_minor for ln in lines), paid_minor=paid)


def statement_csv(st: Statement) -> str:
    """The statement as CSV (amounts in minor units)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["period", "plugin", "kind", "quantity", "gross_minor", "platform_fee_minor", "partner_share_minor",
                "currency", "payout_id", "payout_status"])
    for ln in st.lines:
        w.writerow([ln.period, ln.plugin, ln.kind, ln.quantity, ln.gross_minor, ln.platform_fee_minor,
                    ln.partner_share_minor, st.currency, ln.payout_id or "", ln.payout_status])
    w.writerow(["total", "", "", "", st.gross_minor, st.platform_fee_minor, st.partner_share_minor, st.currency, "",
                ""])
    return buf.getvalue()
