"""Run the ``levqor`` CLI with the fake jobs tools in the global registry (child processes in tests)."""

from __future__ import annotations

import sys

from tests.fakes import jobs_tools
from tools.registry import registry

if __name__ == "__main__":
    registry.load()
    jobs_tools.overlay(registry, registry._tools)
    from api.cli import main

    sys.argv[0] = "levqor"
    main()
