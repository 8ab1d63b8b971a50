"""Automation intelligence: anomaly detection, load forecasting and self-healing."""
