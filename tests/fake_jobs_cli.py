"""Run the ``levqor`` CLI with the fake jobs tools in the global registry (child processes in tests)."""

from __future__ import annotations

import sys

from tests import agents_fakes
from tools.registry import registry

if __name__ == "__main__":
    registry.load()
    agents_fakes.overlay(registry, registry._tools)
    from api.cli import main

    sys.argv[0] = "levqor"
    main()
