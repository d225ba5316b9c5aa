"""The configuration audit: one row per key changed in ``numerflow.toml`` or the secrets file."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from numerflow.store.base import Base, UTCDateTime, utcnow


class ConfigChange(Base):
    """Who changed which key, when, through what (``cli``, ``api``), from what to what. Values are TOML
    text; a secret's values are never stored (``secret`` is true and the values read ``(secret)``).
    ``file_sha256`` is the config file's hash after the change, ``previous`` the copy of the file before."""

    __tablename__ = "config_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    via: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(16))  # set | unset | secret
    old_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    new_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    file_sha256: Mapped[str] = mapped_column(String(64), default="")
    previous: Mapped[str] = mapped_column(String(512), default="")
