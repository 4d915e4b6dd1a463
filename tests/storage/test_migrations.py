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


def test_downgrade_step_by_step_and_upgrade_again(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    url = sqlite_url(path)
    upgrade(url)
    downgrade(url, "0001")  # the admin tables (0002) go, the rest stays
    assert _tables(path) == set(Base.metadata.tables) - {"guild_bans", "audit_log"}
    downgrade(url, "-1")
    assert _tables(path) == set()
    upgrade(url)
    assert _tables(path) == set(Base.metadata.tables)


def test_upgrading_an_0001_database_keeps_its_rows(tmp_path: Path) -> None:
    from sqlalchemy import text

    path = tmp_path / "db.sqlite"
    url = sqlite_url(path)
    upgrade(url, "0001")
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO guild_settings (guild_id, settings_json) VALUES (7, '{}')"))
    upgrade(url)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT guild_id, daily_jobs_per_user FROM guild_settings")).one()
    engine.dispose()
    assert tuple(row) == (7, None)


@pytest.mark.parametrize(("revision", "absent"), [("0001", {"guild_bans", "audit_log"}), ("head", set())])
def test_upgrade_twice_is_a_no_op(tmp_path: Path, revision: str, absent: set[str]) -> None:
    url = sqlite_url(tmp_path / "db.sqlite")
    upgrade(url, revision)
    upgrade(url, revision)
    assert _tables(tmp_path / "db.sqlite") == set(Base.metadata.tables) - absent
