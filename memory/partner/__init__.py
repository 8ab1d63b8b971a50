"""Partner ecosystem stores: partners, plugins, installs, webhook deliveries, revenue and payouts."""
