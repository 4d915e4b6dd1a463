from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from storage.db import downgrade, sqlite_url, upgrade
from storage.models import Base


def _tables(path: Path) -> set[str]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_table(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    upgrade(sqlite_url(path))
    assert _tables(path) == set(Base.metadata.tables)


def test_migrations_match_the_models(tmp_path: Path) -> None:
    """Autogenerate finds nothing to do: the models and the migration chain agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    path = tmp_path / "db.sqlite"
    upgrade(sqlite_url(path))
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_downgrade_one_step_and_upgrade_again(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    url = sqlite_url(path)
    upgrade(url)
    downgrade(url, "-1")
    assert _tables(path) == set()
    upgrade(url)
    assert _tables(path) == set(Base.metadata.tables)


@pytest.mark.parametrize("revision", ["head"])
def test_upgrade_twice_is_a_no_op(tmp_path: Path, revision: str) -> None:
    url = sqlite_url(tmp_path / "db.sqlite")
    upgrade(url, revision)
    upgrade(url, revision)
    assert _tables(tmp_path / "db.sqlite") == set(Base.metadata.tables)
