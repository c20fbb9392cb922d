"""The first schema: institutions, tokens, tasks, experiences, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "institutions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(32), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(256), nullable=False),
        sa.Column("institution_id", sa.Integer(), sa.ForeignKey("institutions.id"), nullable=False),
        sa.Column("scopes", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tokens_institution_id", "tokens", ["institution_id"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("publisher_id", sa.Integer(), sa.ForeignKey("institutions.id"), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("modality", sa.Text(), nullable=False),
        sa.Column("anatomy", sa.Text(), nullable=False),
        sa.Column("classes_json", sa.Text(), nullable=False),
        sa.Column("terms_of_reuse", sa.Text(), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(64), nullable=False),
        sa.Column("frame", sa.String(64), nullable=False),
        sa.Column("backbone", sa.String(128), nullable=False),
        sa.Column("probe", sa.String(64), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("edges_id", sa.String(128), nullable=False),
        sa.Column("feature_dim", sa.Integer(), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("publisher_id", "request_id", name="uq_tasks_publisher_request"),
    )
    op.create_index("ix_tasks_publisher_id", "tasks", ["publisher_id"])
    op.create_index("ix_tasks_frame", "tasks", ["frame"])
    op.create_index("ix_tasks_withdrawn_at", "tasks", ["withdrawn_at"])
    op.create_table(
        "experiences",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_id", sa.String(40), sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("institutions.id"), nullable=False),
        sa.Column("scenario", sa.String(32), nullable=False),
        sa.Column("source_task", sa.Text(), nullable=False),
        sa.Column("architecture", sa.Text(), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("value_without", sa.Float(), nullable=False),
        sa.Column("value_with", sa.Float(), nullable=False),
        sa.Column("repetitions", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_experiences_task_id", "experiences", ["task_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("institution_id", sa.Integer(), sa.ForeignKey("institutions.id"), nullable=True),
        sa.Column("token_public_id", sa.String(32), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("task_id", sa.String(40), nullable=True),
        sa.Column("detail_json", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_log_task_id", "audit_log", ["task_id"])


def downgrade() -> None:
    for table in ("audit_log", "experiences", "tasks", "tokens", "institutions"):
        op.drop_table(table)
