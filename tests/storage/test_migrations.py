from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine, inspect

from storage.db import downgrade, sync_url, upgrade
from storage.models import Base

# The same migrations on SQLite and PostgreSQL (multi-host deployments).
pytestmark = pytest.mark.both_databases  # PostgreSQL for multi-host deployments


def _engine(url: str) -> Engine:
    return create_engine(sync_url(url))


def _tables(url: str) -> set[str]:
    engine = _engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_table(db_url: str) -> None:
    upgrade(db_url)
    assert _tables(db_url) == set(Base.metadata.tables)


def test_migrations_match_the_models(db_url: str) -> None:
    """Autogenerate finds nothing to do: the models and the migration chain agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade(db_url)
    engine = _engine(db_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_downgrade_step_by_step_and_upgrade_again(db_url: str) -> None:
    url = db_url
    upgrade(url)
    downgrade(url, "0001")  # the admin tables (0002) and posted messages (0005) go, the rest stays
    assert _tables(url) == set(Base.metadata.tables) - {"guild_bans", "audit_log", "posted_messages"}
    downgrade(url, "-1")
    assert _tables(url) == set()
    upgrade(url)
    assert _tables(url) == set(Base.metadata.tables)


def test_upgrading_an_0001_database_keeps_its_rows(db_url: str) -> None:
    from sqlalchemy import text

    url = db_url
    upgrade(url, "0001")
    engine = _engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO guild_settings (guild_id, settings_json) VALUES (7, '{}')"))
    upgrade(url)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT guild_id, daily_jobs_per_user FROM guild_settings")).one()
    engine.dispose()
    assert tuple(row) == (7, None)


@pytest.mark.parametrize(
    ("revision", "absent"), [("0001", {"guild_bans", "audit_log", "posted_messages"}), ("head", set())]
)
def test_upgrade_twice_is_a_no_op(db_url: str, revision: str, absent: set[str]) -> None:
    upgrade(db_url, revision)
    upgrade(db_url, revision)
    assert _tables(db_url) == set(Base.metadata.tables) - absent
