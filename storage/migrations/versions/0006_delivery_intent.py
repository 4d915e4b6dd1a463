"""delivery intent; job ids never reused

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite gets its table rebuilt as AUTOINCREMENT (ALTER cannot add the keyword); other databases
    # only get the column (their sequences never hand out an id twice anyway).
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "jobs", recreate="always" if sqlite else "auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.add_column(sa.Column("delivery_started_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("delivery_started_at")
