"""Tables of the data room: the download manifest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from numerflow.store.base import Base, UTCDateTime, utcnow


class DatasetFile(Base):
    """One verified downloaded file. ``round_number`` is 0 for files not keyed by round."""

    __tablename__ = "dataset_files"
    __table_args__ = (UniqueConstraint("version", "filename", "round_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    round_number: Mapped[int] = mapped_column(Integer, default=0)
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    downloaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
