"""Agent runs, approvals and chat threads as tools (the API and CLI call these)."""
