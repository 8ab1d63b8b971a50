"""API usage metered per key, endpoint, mode and day."""
