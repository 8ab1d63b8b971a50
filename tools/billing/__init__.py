"""Billing: the plan and credit-pack catalogue, Stripe Checkout and webhooks, the revenue ledger, dunning."""
