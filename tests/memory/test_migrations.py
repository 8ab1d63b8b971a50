"""Models and migrations agree; the settings are documented."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from memory.db import get_engine
from memory.metadata import metadata
from memory.migrate import at_head
from tests.support import ROOT


def test_models_and_migrations_do_not_drift() -> None:
    with get_engine().connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_database_is_at_head() -> None:
    assert at_head(get_engine())


def test_every_setting_is_in_readme() -> None:
    from levqor.settings import Settings

    readme = (ROOT / "README.md").read_text()
    missing = [f"LEVQOR_{n.upper()}" for n in Settings.model_fields if f"LEVQOR_{n.upper()}" not in readme]
    assert not missing, f"document these settings in README.md: {missing}"


def test_tools_have_docstrings_risks_and_typed_io() -> None:
    from tools.registry import RISKS, registry

    specs = registry.all()
    assert specs
    for spec in specs:
        assert spec.risk in RISKS and spec.description and "." in spec.name
        assert spec.input_model.model_json_schema()["type"] == "object"
