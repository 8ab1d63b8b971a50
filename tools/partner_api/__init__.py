"""Partner API and marketplace: plugin registry, partner webhooks, revenue and payouts."""
