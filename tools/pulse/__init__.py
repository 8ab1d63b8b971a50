"""Pulse: daily KPI snapshots, the Cost DB, KPI targets and the monthly Ecosystem Pulse PDF."""
