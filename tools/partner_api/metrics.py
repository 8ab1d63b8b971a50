"""Partner ecosystem metrics: webhook deliveries, their latency, disabled endpoints, payouts."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DELIVERIES = Counter("levqor_partner_webhook_deliveries_total", "Partner webhook delivery attempts by result",
                     ["result"])  # success | http_error | network_error | blocked | gone
DELIVERY_LATENCY = Histogram(
    "levqor_partner_webhook_event_to_delivery_seconds", "Time from a platform event to its 2xx delivery",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
ATTEMPT_DURATION = Histogram(
    "levqor_partner_webhook_attempt_seconds", "Duration of one webhook HTTP attempt",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SHED = Counter("levqor_partner_webhook_shed_total",
               "Partner webhook deliveries the fan-out shed under overload (recorded for replay)",
               ["reason"])  # org_backlog | endpoint_lag
REPLAYED_SHED = Counter("levqor_partner_webhook_shed_replayed_total", "Shed partner webhook deliveries replayed")
ENDPOINTS_DISABLED = Counter("levqor_partner_endpoints_disabled_total", "Partner endpoints disabled", ["reason"])
PAYOUTS = Counter("levqor_partner_payouts_total", "Partner payouts by outcome", ["outcome"])
PAYOUT_AMOUNT = Counter("levqor_partner_payout_minor_units_total", "Minor units transferred to partners",
                        ["currency"])
