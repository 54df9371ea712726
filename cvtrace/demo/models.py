"""The demo's tables: users, circuits, stars and comments."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship


def utcnow() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """The declarative base of the demo's models."""


class User(Base):
    """Someone who builds and shares circuits."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    circuits: Mapped[list[Circuit]] = relationship(back_populates="owner")


class Circuit(Base):
    """A saved circuit: its document, its owner, and where it was forked from.

    ``views_hll`` holds the HyperLogLog registers counting unique viewers, and
    ``preview_svg`` the last drawing from the preview service; both are loaded only when
    asked for.
    """

    __tablename__ = "circuits"
    __table_args__ = (Index("ix_circuits_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    forked_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("circuits.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    """When the owner last changed it (set by the edit route: views and previews don't count)."""
    views_hll: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    preview_svg: Mapped[str | None] = deferred(mapped_column(Text))
    preview_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    owner: Mapped[User] = relationship(back_populates="circuits", lazy="joined")
    forked_from: Mapped[Circuit | None] = relationship(remote_side=[id])
    comments: Mapped[list[Comment]] = relationship(
        back_populates="circuit", order_by="Comment.created_at", cascade="all, delete-orphan"
    )


class Star(Base):
    """A user starred a circuit (at most once)."""

    __tablename__ = "stars"
    __table_args__ = (UniqueConstraint("user_id", "circuit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    user: Mapped[User] = relationship()
    circuit: Mapped[Circuit] = relationship()


class Comment(Base):
    """A comment under a circuit."""

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    circuit: Mapped[Circuit] = relationship(back_populates="comments")
    author: Mapped[User] = relationship(lazy="joined")
