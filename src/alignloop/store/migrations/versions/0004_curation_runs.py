"""curation runs, the trust scores and datasets each run writes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 15:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "curation_runs",
        sa.Column("id", BigId, nullable=False),
        sa.Column("out", sa.String(length=1000), nullable=False),
        sa.Column("config", JSONType, nullable=False, server_default="{}"),
        sa.Column("summary", JSONType, nullable=False, server_default="{}"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "datasets",
        sa.Column("id", BigId, nullable=False),
        sa.Column("run_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["curation_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_datasets_run_id", "datasets", ["run_id"])
    with op.batch_alter_table("trust_scores") as batch_op:
        batch_op.add_column(sa.Column("run_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("components", JSONType, nullable=True))
        batch_op.create_foreign_key("fk_trust_scores_run_id", "curation_runs", ["run_id"], ["id"])
        batch_op.create_index("ix_trust_scores_run_id", ["run_id"])


def downgrade() -> None:
    with op.batch_alter_table("trust_scores") as batch_op:
        batch_op.drop_index("ix_trust_scores_run_id")
        batch_op.drop_constraint("fk_trust_scores_run_id", type_="foreignkey")
        batch_op.drop_column("components")
        batch_op.drop_column("run_id")
    op.drop_index("ix_datasets_run_id", table_name="datasets")
    op.drop_table("datasets")
    op.drop_table("curation_runs")
