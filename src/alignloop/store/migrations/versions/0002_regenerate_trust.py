"""regenerated replies, comparison source, trust scores

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("superseded_by_id", BigId, nullable=True))
        batch_op.create_foreign_key(
            "fk_messages_superseded_by_id", "messages", ["superseded_by_id"], ["id"]
        )
    with op.batch_alter_table("comparisons") as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=16), nullable=False, server_default="compare")
        )
        batch_op.create_check_constraint(
            "ck_comparisons_source", "source IN ('compare', 'regenerate')"
        )
    op.create_table(
        "trust_scores",
        sa.Column("id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("troll_score", sa.Float(), nullable=False),
        sa.Column("n_labels", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_trust_scores_user_id", "trust_scores", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_trust_scores_user_id", table_name="trust_scores")
    op.drop_table("trust_scores")
    with op.batch_alter_table("comparisons") as batch_op:
        batch_op.drop_constraint("ck_comparisons_source", type_="check")
        batch_op.drop_column("source")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_constraint("fk_messages_superseded_by_id", type_="foreignkey")
        batch_op.drop_column("superseded_by_id")
