"""The platform itself: its database schema and whether it is ready to serve."""
