"""Data insights (roadmap step 3): anonymised platform aggregates, the quarterly Insights Report, publishing."""
