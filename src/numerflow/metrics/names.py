"""Numerai's score names, in one exact table: which kind of score each name is.

Numerai's API names the same score several ways across its history and endpoints (``displayName`` of
``submissionScores``: ``canon_corr``, ``v2_corr20``, ``mmc``, ``fnc_v3`` ...; the website's CORR20V2,
CORJ60 ...). :data:`SCORE_NAMES` maps each known name (lower case) to its kind:
``corr`` (the 20-day payout CORR), ``mmc``, ``bmc``, ``fnc``, or a kind of its own (``corr60``,
``cort20``, ``tc``, ``cwmm`` ...). A name is matched exactly, never by substring: ``corr60`` or
``cwmm`` is not CORR, and a name not in the table keeps its own name (:func:`score_kind`).

Signals and Crypto have names of their own: ``alpha`` and ``mpc`` (``meta_portfolio_contribution``),
``corr_v4`` and FNCv4 (``v4_feature_neutral_correlation``, an ``fnc``); :data:`TOURNAMENT_KINDS` says
which kinds each tournament's rows show, :data:`VALIDATION_KINDS` which kinds its model versions'
validation scores hold, and :func:`label` how a table heads them.

Within a kind, the names come in order of preference (the canonical score first): where one round
reports two names of the same kind on the same day, :func:`preference` says which one to show.
"""

from __future__ import annotations

#: kind -> Numerai's names for it, preferred first (all lower case)
KINDS: dict[str, tuple[str, ...]] = {
    "corr": ("canon_corr", "v2_corr20", "corr20v2", "corr20", "corr"),
    "mmc": ("canon_mmc", "mmc", "mmc20", "v2_mmc20"),
    "bmc": ("canon_bmc", "bmc", "bmc20"),
    "fnc": ("canon_fnc", "fnc_v3", "fncv3", "fnc", "fnc_v4", "fncv4", "v4_feature_neutral_correlation"),
    "corr60": ("canon_corr60", "corr60", "v2_corr60"),
    "corj60": ("corj60",),  # CORR on jerome_60
    "cort20": ("cort20",),  # CORR on teager_20
    "tc": ("canon_tc", "tc"),
    "cwmm": ("cwmm",),
    "mcwnm": ("mcwnm",),
    "apcwnm": ("apcwnm",),
    "corr_v4": ("corr_v4", "corrv4"),  # Signals' informational CORR on its 20-day main target
    "ic": ("ic_v2", "icv2", "ic"),
    "ric": ("ric",),
    "alpha": ("alpha",),
    "mpc": ("mpc", "meta_portfolio_contribution"),
    "churn": ("churn",),  # Signals: 1 - Spearman of a signal and the one before
    "turnover": ("turnover",),  # Signals: half the total change of the neutral portfolio weights
}
#: Numerai's score name (lower case) -> its kind
SCORE_NAMES: dict[str, str] = {name: kind for kind, names in KINDS.items() for name in names}
#: The kinds a round's performance row shows (CORR, MMC, BMC, FNC).
MAIN_KINDS = ("corr", "mmc", "bmc", "fnc")
#: The kinds of a Signals model's validation scores (metrics.signals.signals_validation_scores): the
#: alpha-like neutralized score, CORR with the target, churn and turnover against the date before.
SIGNALS_KINDS = ("alpha", "corr", "churn", "turnover")
#: Per tournament, the kinds its performance rows show, payout scores first: Classic (8) CORR/MMC/BMC/FNC;
#: Signals (11) Alpha and MPC (paid since 2025-09), CORRv4 informational; Crypto (12) MMC (paid), CORR
#: informational.
TOURNAMENT_KINDS: dict[int, tuple[str, ...]] = {
    8: MAIN_KINDS,
    11: ("alpha", "mpc", "corr_v4"),
    12: ("mmc", "corr"),
}
#: Per tournament, the kinds of a model version's validation scores (its ``scores`` hold ``<kind>_mean``,
#: ``<kind>_sharpe`` ..., and ``per_era_<first kind>``), the headline first: Classic (8) CORR/MMC/BMC/FNC
#: (modeling.scoring); Signals (11) the alpha-like score, CORR with the target, churn and turnover
#: (:data:`SIGNALS_KINDS`); Crypto (12) none: Numerai's Crypto files have no validation part, so a Crypto
#: version records no validation scores (``numerflow cv`` scores it out of fold).
VALIDATION_KINDS: dict[int, tuple[str, ...]] = {8: MAIN_KINDS, 11: SIGNALS_KINDS, 12: ()}
#: Per tournament, the kinds its payout is computed from (metrics.payout: Classic CORR and MMC, Signals
#: Alpha and MPC, Crypto MMC): the per-model summary of ``numerflow perf`` (mean, sharpe) covers these.
PAYOUT_KINDS: dict[int, tuple[str, ...]] = {8: ("corr", "mmc"), 11: ("alpha", "mpc"), 12: ("mmc",)}
#: Every kind a performance row of any tournament shows.
SHOWN_KINDS: tuple[str, ...] = tuple(dict.fromkeys(k for kinds in TOURNAMENT_KINDS.values() for k in kinds))


_LABELS = {"corr_v4": "CORRv4", "ic": "ICv2"}


def label(kind: str) -> str:
    """A kind as a table heads it: ``CORR``, ``ALPHA``, ``CORRv4``."""
    return _LABELS.get(kind, kind.upper())


def score_kind(name: str) -> str:
    """The kind of Numerai's score ``name`` (case-insensitive); an unknown name is its own kind."""
    low = name.strip().lower()
    return SCORE_NAMES.get(low, low)


def preference(name: str) -> int:
    """Rank of ``name`` among its kind's names (0 = canonical); unknown names rank after known ones."""
    low = name.strip().lower()
    kind = SCORE_NAMES.get(low)
    return KINDS[kind].index(low) if kind is not None else len(SCORE_NAMES)


def canonical(name: str) -> str | None:
    """The canonical name of the kind ``name`` belongs to (``v2_corr20`` -> ``canon_corr``), or None."""
    kind = SCORE_NAMES.get(name.strip().lower())
    return KINDS[kind][0] if kind is not None else None
