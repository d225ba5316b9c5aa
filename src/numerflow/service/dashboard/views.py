"""What the dashboard's pages show, gathered from the REST resources' own query functions.

The pages call the API's route functions (``routers.models.get_model``, ``routers.tournament.list_rounds``
...) and :mod:`numerflow.service.queries` directly, so the dashboard and the API never disagree. The
one view the API has no resource for, the rounds × models grid, is built here: :func:`rounds_grid`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from numerflow.metrics.names import TOURNAMENT_KINDS, VALIDATION_KINDS
from numerflow.metrics.names import label as score_label
from numerflow.store.queries import tournament as q
from numerflow.store.queries.performance import slot_tournaments
from numerflow.tournament.client import TOURNAMENT_CLASSIC, TOURNAMENT_NAMES
from numerflow.tournament.performance import final_scores

#: validation-report rows of a version's ``scores`` (key, label, format)
VALIDATION_ROWS: tuple[tuple[str, str, str], ...] = (
    ("corr_mean", "CORR mean", "{:+.4f}"),
    ("corr_std", "CORR std", "{:.4f}"),
    ("corr_sharpe", "CORR sharpe", "{:+.2f}"),
    ("corr_max_drawdown", "CORR max drawdown", "{:.4f}"),
    ("mmc_mean", "MMC mean", "{:+.4f}"),
    ("mmc_sharpe", "MMC sharpe", "{:+.2f}"),
    ("mmc_eras", "MMC on eras (meta model covers)", "{:d}"),
    ("bmc_mean", "BMC mean", "{:+.4f}"),
    ("bmc_sharpe", "BMC sharpe", "{:+.2f}"),
    ("fnc_mean", "FNC mean", "{:+.4f}"),
    ("max_feature_exposure_mean", "max feature exposure", "{:.4f}"),
    ("corr_with_meta_model_mean", "corr with meta model", "{:+.4f}"),
    ("payout_final", "simulated payout (stake 1)", "{:.3f}"),
    ("n_eras", "validation eras", "{:d}"),
    ("n_rows", "validation rows", "{:,d}"),
)


def fmt_score(value: Any, spec: str = "{:+.4f}") -> str:
    """A number for a table cell; an em dash for a missing or non-finite one."""
    if value is None or isinstance(value, bool):
        return "—"
    try:
        if isinstance(value, float) and not math.isfinite(value):
            return "—"
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


def fmt_nmr(value: Decimal | str | None, spec: str = "{:.2f}") -> str:
    """An NMR amount (a Decimal from the store, or the API's decimal string) for a table cell, formatted
    from its exact value, never through a float (halves round away from zero); an em dash for none."""
    if value is None or value == "":
        return "—"
    with localcontext(rounding=ROUND_HALF_UP):
        return spec.format(value if isinstance(value, Decimal) else Decimal(value))


def fmt_time(value: datetime | str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M UTC")


#: Classic's versions-table columns of a version's ``scores`` (key, header, format)
VERSION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("corr_mean", "CORR", "{:+.4f}"),
    ("corr_sharpe", "Sharpe", "{:+.2f}"),
    ("mmc_mean", "MMC", "{:+.4f}"),
    ("bmc_mean", "BMC", "{:+.4f}"),
    ("payout_final", "Payout sim", "{:.3f}"),
)


#: what a model page says where its tournament's versions record no validation scores (Crypto)
NO_VALIDATION = (
    "Crypto versions record no validation scores: Numerai's Crypto files have no validation part "
    "(numerflow cv scores a model out of fold)."
)


@dataclass(frozen=True)
class ValidationView:
    """How a model's page shows its versions' validation scores, by its tournament
    (:data:`numerflow.metrics.names.VALIDATION_KINDS`): the versions table's columns and the validation
    report's rows (key of a version's ``scores``, label, format), and the per-era series the validation
    chart draws cumulatively (``per_era_<headline kind>``), its label and its unit (era, Signals' date)."""

    columns: tuple[tuple[str, str, str], ...]
    rows: tuple[tuple[str, str, str], ...]
    series: str = ""
    label: str = ""
    unit: str = ""

    @property
    def none(self) -> str:
        """What the page says where there is no validation score to show."""
        return "No validation scores." if self.rows else NO_VALIDATION


def validation_view(tournament: int) -> ValidationView:
    """Classic: CORR/MMC/BMC/payout columns and :data:`VALIDATION_ROWS`, as ever. Signals: each kind of
    :data:`~numerflow.metrics.names.SIGNALS_KINDS` under its label (ALPHA, CORR, CHURN, TURNOVER), the
    headline's sharpe, and the summaries of :func:`numerflow.metrics.signals.signals_validation_scores`.
    Crypto: none (its versions record no validation scores)."""
    from numerflow.metrics.signals import SIGNALS_SUMMARIZED

    if tournament not in VALIDATION_KINDS or tournament == TOURNAMENT_CLASSIC:
        return ValidationView(VERSION_COLUMNS, VALIDATION_ROWS, "per_era_corr", "CORR", "era")
    kinds = VALIDATION_KINDS[tournament]
    if not kinds:
        return ValidationView((), ())
    columns: list[tuple[str, str, str]] = []
    rows: list[tuple[str, str, str]] = []
    for kind in kinds:
        name, signed = score_label(kind), kind in SIGNALS_SUMMARIZED
        columns.append((f"{kind}_mean", name, "{:+.4f}" if signed else "{:.4f}"))
        if kind == kinds[0]:
            columns.append((f"{kind}_sharpe", "Sharpe", "{:+.2f}"))
        if signed:
            rows += [
                (f"{kind}_mean", f"{name} mean", "{:+.4f}"),
                (f"{kind}_std", f"{name} std", "{:.4f}"),
                (f"{kind}_sharpe", f"{name} sharpe", "{:+.2f}"),
                (f"{kind}_max_drawdown", f"{name} max drawdown", "{:.4f}"),
            ]
        else:
            rows.append((f"{kind}_mean", f"{name} mean", "{:.4f}"))
    rows += [
        ("n_dates", "validation dates", "{:d}"),
        ("n_rows", "validation rows", "{:,d}"),
        ("target", "target", "{}"),
        ("neutralized", "against Numerai's neutralizers", ""),
    ]
    return ValidationView(tuple(columns), tuple(rows), f"per_era_{kinds[0]}", score_label(kinds[0]), "date")


def validation_report(
    scores: dict[str, Any], rows: Sequence[tuple[str, str, str]] = VALIDATION_ROWS
) -> list[tuple[str, str]]:
    """(label, formatted value) for each validation score a version has (``rows``: its tournament's,
    :func:`validation_view`); a yes/no one as yes or no."""
    out = []
    for key, label, spec in rows:
        value = scores.get(key)
        if isinstance(value, bool):
            out.append((label, "yes" if value else "no"))
        elif value is not None:
            out.append((label, fmt_score(value, spec)))
    return out


def sparkline(values: Sequence[float], width: int = 120, height: int = 28) -> Markup:
    """An inline SVG line of ``values`` (no JavaScript needed); a zero line when it crosses zero."""
    if len(values) < 2:
        return Markup('<span class="muted">—</span>')
    lo, hi = min(min(values), 0.0), max(max(values), 0.0)
    span = (hi - lo) or 1.0
    step = (width - 2) / (len(values) - 1)

    def y(v: float) -> float:
        return round(1 + (height - 2) * (hi - v) / span, 1)

    points = " ".join(f"{round(1 + i * step, 1)},{y(v)}" for i, v in enumerate(values))
    colour = "#1a7f37" if values[-1] >= 0 else "#cf222e"
    zero = f'<line x1="0" x2="{width}" y1="{y(0.0)}" y2="{y(0.0)}" class="zero"/>' if lo < 0 < hi else ""
    title = f"cumulative CORR {values[-1]:+.4f} over {len(values)} rounds"
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{title}"><title>{title}</title>{zero}'
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/></svg>'
    )


@dataclass
class Cell:
    status: str = ""
    file_sha256: str = ""
    model_ref: str = ""
    error: str = ""
    corr: float | None = None
    mmc: float | None = None
    bmc: float | None = None
    scores: list[tuple[str, float | None]] = field(default_factory=list)  # the tournament's own names
    day: int = 0
    resolved: bool = False
    payout_nmr: Decimal | None = None
    payout_status: str = ""

    @property
    def has_scores(self) -> bool:
        return any(value is not None for _, value in self.scores)


@dataclass
class RoundRow:
    number: int
    status: str
    open_time: datetime | None
    live_rows: int
    cells: dict[str, Cell] = field(default_factory=dict)


def slot_label(slot: str, tournament: int) -> str:
    """A slot as the grid's header shows it: Signals and Crypto slots say their tournament."""
    return slot if tournament == 8 else f"{slot} ({TOURNAMENT_NAMES.get(tournament, tournament)})"


def slot_labels(session: Session, slots: Sequence[str]) -> dict[str, str]:
    """slot -> its header in the rounds grid (:func:`slot_label`)."""
    tournaments = slot_tournaments(session)
    return {slot: slot_label(slot, tournaments.get(slot, 8)) for slot in slots}


def rounds_grid(session: Session, limit: int = 30) -> tuple[list[str], list[RoundRow]]:
    """The newest ``limit`` rounds numerflow worked on, each with every slot's submission, scores so far
    (under the slot's tournament's own names: CORR/MMC/BMC, Signals ALPHA/MPC/CORRv4, Crypto MMC/CORR)
    and payout. Returns (slots, rows); five indexed queries whatever the size."""
    rounds = q.latest_rounds(session, limit)
    if not rounds:
        return [], []
    # one row per round number: Classic, Signals and Crypto share the numbers (the Classic round heads it)
    rows: dict[int, RoundRow] = {}
    for r in sorted(rounds, key=lambda r: r.tournament != 8):
        rows.setdefault(r.number, RoundRow(r.number, r.status, r.open_time, r.live_rows))
    numbers = sorted(rows, reverse=True)
    slots: set[str] = set()
    for sub in q.submissions(session, round_numbers=numbers):
        slots.add(sub.numerai_model)
        ref = f"{sub.model_name}@{sub.model_version}" if sub.model_version is not None else sub.model_name
        rows[sub.round_number].cells[sub.numerai_model] = Cell(
            status=sub.status, file_sha256=sub.file_sha256, model_ref=ref, error=sub.error or ""
        )
    tournaments = slot_tournaments(session)
    for slot, per_round in final_scores(session, min_round=min(numbers)).items():
        kinds = TOURNAMENT_KINDS.get(tournaments.get(slot, 8), TOURNAMENT_KINDS[8])[:3]
        for number, v in per_round.items():
            if number not in rows:
                continue
            slots.add(slot)
            cell = rows[number].cells.setdefault(slot, Cell())
            cell.corr, cell.mmc, cell.bmc = v["corr"], v["mmc"], v["bmc"]
            cell.scores = [(score_label(k), v[k]) for k in kinds]
            cell.day, cell.resolved = v["day"], bool(v.get("resolved"))
    for p in q.payouts(session, round_numbers=numbers):
        slots.add(p.numerai_model)
        cell = rows[p.round_number].cells.setdefault(p.numerai_model, Cell())
        cell.payout_nmr, cell.payout_status = p.payout_nmr, p.status
    return sorted(slots), [rows[n] for n in numbers]


def head_to_head(
    champion: list[dict[str, Any]], challenger: list[dict[str, Any]], kinds: Sequence[str] = ("corr", "mmc")
) -> list[dict[str, Any]]:
    """Champion vs challenger, round by round (rounds either has scores for), newest first: each side's
    ``kinds`` (the tournament's first two: CORR/MMC, Signals ALPHA/MPC, Crypto MMC/CORR) and the
    challenger's lead on the first."""
    by_round: dict[int, dict[str, Any]] = defaultdict(dict)
    for side, rows in (("champion", champion), ("challenger", challenger)):
        for r in rows:
            by_round[r["round"]][side] = r
    out = []
    for number in sorted(by_round, reverse=True):
        a = by_round[number].get("champion", {})
        b = by_round[number].get("challenger", {})
        ca, cb = a.get(kinds[0]), b.get(kinds[0])
        out.append(
            {
                "round": number,
                "champion": [a.get(k) for k in kinds],
                "challenger": [b.get(k) for k in kinds],
                "diff": (cb - ca) if ca is not None and cb is not None else None,
            }
        )
    return out


def data_versions_on_disk(data_dir: Path, known: set[str]) -> list[str]:
    """Version folders under ``data_dir`` that the download manifest does not list (made by hand)."""
    if not data_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in data_dir.iterdir()
        if p.is_dir() and p.name not in known and not p.name.startswith(".") and any(p.glob("*.parquet"))
    )
