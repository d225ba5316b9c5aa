"""The score names the simulator shows, as Numerai's API spells them, in one table.

The engine stores four scores per submission and day (``canon_corr``, ``canon_mmc``, ``canon_bmc``,
``canon_fnc``: see scoring.py). Numerai returns the same numbers under several names (``v2_corr20`` and
``canon_corr`` are both the payout CORR on ``target_ender_20``; ``mmc`` and ``canon_mmc`` both MMC against
the meta model; ...), and clients filter on any of them. :data:`SHOWN` maps every name the simulator emits
to the stored score it shows; nothing else in the simulator spells a display name.

Names Numerai has but the simulator does not compute (``tc``, deprecated; ``corj60``, on a target it does not
score) are not emitted: a client filtering on them finds nothing rather than a number that means something
else. Signals' scores have names of their own (``alpha``, ``mpc``, ``corr_v4``, ``fnc_v4``, ``ic_v2``,
``ric``): a Classic model has none of them, a Signals model none of Classic's. Which kind a name is
comes from ``numerflow.metrics.names``, the one table of Numerai's score names.
"""

from __future__ import annotations

from numerflow.metrics.names import canonical

# the display names the simulator emits, as Numerai returns them, in the order rows are emitted
EMITTED: tuple[str, ...] = (
    "canon_corr",
    "v2_corr20",
    "corr20",
    "canon_mmc",
    "mmc",
    "canon_bmc",
    "bmc",
    "canon_fnc",
    "fnc_v3",
)
# display name -> the stored score it shows (the canonical name of its kind in numerflow.metrics.names)
SHOWN: dict[str, str] = {name: str(canonical(name)) for name in EMITTED}
# Signals' scores (signals.py), shown under their own names: Alpha and MPC (payout), CORRv4, FNCv4, ICv2
# and RIC (informational)
SIGNALS_SHOWN: dict[str, str] = {n: n for n in ("alpha", "mpc", "corr_v4", "fnc_v4", "ic_v2", "ric")}
ALL_SHOWN: dict[str, str] = {**SHOWN, **SIGNALS_SHOWN}
# other spellings clients use when filtering (case-insensitive) -> the display name answered
_FILTER_SPELLINGS: dict[str, str] = {
    "corr": "corr20",
    "corr20v2": "v2_corr20",
    "corr20_v2": "v2_corr20",
    "fnc": "fnc_v3",
    "fncv3": "fnc_v3",
    "meta_portfolio_contribution": "mpc",
    "corrv4": "corr_v4",
    "fncv4": "fnc_v4",
    "icv2": "ic_v2",
    "ic": "ic_v2",
}

# reputation fields of dailyModelPerformances / the leaderboards -> stored score (None: not computed)
REPUTATION: dict[str, str | None] = {
    "corr": "canon_corr",
    "mmc": "canon_mmc",
    "fnc": "canon_fnc",
    "fncV3": "canon_fnc",
    "bmc": "canon_bmc",
    "tc": None,
}


def displayed_as(name: str) -> str | None:
    """The display name a filter asks for (``"CORR20"`` -> ``"corr20"``), or None if no such score."""
    low = name.strip().lower()
    if low in ALL_SHOWN:
        return low
    return _FILTER_SPELLINGS.get(low)


def names_of(stored: str) -> list[str]:
    """Every display name a stored score is shown under (``canon_corr`` -> canon_corr, v2_corr20, corr20)."""
    return [shown for shown, s in ALL_SHOWN.items() if s == stored]
