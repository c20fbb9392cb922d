"""The cloud's tables (SQLAlchemy 2 declarative models). The migrations in ``core/cloud/migrations`` create exactly
these (checked by a test that compares them); change both together.

Times are UTC, timezone-aware. Text columns hold what clients sent, unchanged (checked by
:mod:`core.cloud.records`); they are escaped where they are shown, never here."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Institution(Base):
    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Token(Base):
    """An API token: ``public_id`` is the part of the token before the secret, ``secret_hash`` the argon2 hash of
    the secret (the token itself is shown once, never stored). ``scopes``: space-separated read/publish/admin."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(256))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    scopes: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Task(Base):
    """A published task: its card, its fingerprint (canonical bytes, accepted by the strict validator) and the
    identity of the features (backbone, probe, weights, bin edges, protocol) that decides what it can be ranked
    against (``frame``, a digest of those)."""

    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("publisher_id", "request_id", name="uq_tasks_publisher_request"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text)
    modality: Mapped[str] = mapped_column(Text)
    anatomy: Mapped[str] = mapped_column(Text)
    classes_json: Mapped[str] = mapped_column(Text)
    terms_of_reuse: Mapped[str] = mapped_column(Text)
    contact: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64))
    frame: Mapped[str] = mapped_column(String(64), index=True)
    backbone: Mapped[str] = mapped_column(String(128))
    probe: Mapped[str] = mapped_column(String(64))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    edges_id: Mapped[str] = mapped_column(String(128))
    feature_dim: Mapped[int] = mapped_column(Integer)
    n_samples: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)


class Experience(Base):
    """What an institution measured when it borrowed something for this task (one of the four scenarios)."""

    __tablename__ = "experiences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    scenario: Mapped[str] = mapped_column(String(32))
    source_task: Mapped[str] = mapped_column(Text)
    architecture: Mapped[str] = mapped_column(Text)
    policy: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(Text)
    value_without: Mapped[float] = mapped_column(Float)
    value_with: Mapped[float] = mapped_column(Float)
    repetitions: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class AuditEntry(Base):
    """One write: who (institution, token), what (action, task), when, and a JSON detail; written in the same
    transaction as the write itself, so a write without its entry (or the reverse) cannot exist."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"), nullable=True)
    token_public_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    detail_json: Mapped[str] = mapped_column(Text)
