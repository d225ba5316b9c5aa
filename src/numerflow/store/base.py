"""Declarative base and column types shared by every table."""

from __future__ import annotations

import decimal
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import DateTime, MetaData, Numeric, String
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from numerflow.config import NMR_PLACES, nmr_text, plain_decimal

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always stored and returned as timezone-aware UTC (SQLite included)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


MONEY_PLACES = NMR_PLACES  # NMR is an 18-decimal token (the config's NMR settings share the rule)
_MONEY_CTX = decimal.Context(prec=60)
_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)


def money_amount(value: Decimal | float | int | str) -> Decimal:
    """``value`` as the store keeps an NMR amount: to 18 decimals, a float by its shortest repr (``0.1`` is
    ``Decimal("0.1")``, not 0.1000000000000000055…). ValueError when it is not finite."""
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"an NMR amount must be finite, not {value}")
    return amount.quantize(_QUANTUM, context=_MONEY_CTX)


def money_text(value: Decimal | None) -> str | None:
    """An NMR amount as text for JSON (the REST API, the stake plan): a plain decimal string, exact
    (``"12.5"``, ``"100"``, ``"0.000000000000000001"``; zero is ``"0"``, never ``"-0"``)."""
    return None if value is None else nmr_text(value)


class Money(TypeDecorator[Decimal]):
    """An NMR amount: exact to 18 decimals, read back as a ``Decimal`` (never a float).

    PostgreSQL stores it as ``NUMERIC(36, 18)``. SQLite has no exact decimal type (its NUMERIC turns
    ``0.1`` into a double), so there it is stored as text; sums are done in Python on Decimals.
    Amounts should arrive as Decimal (or text); a float is taken by its shortest repr (``0.1`` is
    ``Decimal("0.1")``, not 0.1000000000000000055…). NaN and infinities are refused.
    """

    impl = Numeric(36, MONEY_PLACES, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):  # type: ignore[override]
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(36, MONEY_PLACES, asdecimal=True))

    def process_bind_param(self, value: Decimal | float | int | str | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        amount = money_amount(value)
        return format(amount, "f") if dialect.name == "sqlite" else amount

    def process_result_value(self, value: object, dialect):  # type: ignore[override]
        if value is None:
            return None
        return plain_decimal(Decimal(str(value)))


def utcnow() -> datetime:
    return datetime.now(UTC)
