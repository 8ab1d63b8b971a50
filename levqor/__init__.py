"""Levqor core: settings, logging and the version shared by every layer."""

__version__ = "0.1.0"
