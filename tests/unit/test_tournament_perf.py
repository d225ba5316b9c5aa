"""The performance table: latest day per round, cumulative CORR/MMC, payouts — read back from the database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from numerflow.store import open_database, session_scope
from numerflow.store.tables import Payout, Score
from numerflow.tournament.performance import metric_kind, performance_table


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("canon_corr", "corr"),
        ("v2_corr20", "corr"),
        ("CORR20", "corr"),
        ("canon_mmc", "mmc"),
        ("mmc", "mmc"),
        ("canon_bmc", "bmc"),
        ("fnc_v3", "fnc"),
        ("canon_fnc", "fnc"),
        ("tc", "tc"),  # Numerai's own names keep their own kind: never folded into CORR
        ("corr60", "corr60"),
        ("corj60", "corj60"),
        ("cwmm", "cwmm"),
        ("brand_new_corr_score", "brand_new_corr_score"),
    ],
)
def test_metric_names_map_to_kinds(name: str, kind: str) -> None:
    assert metric_kind(name) == kind


def test_table_takes_the_latest_day_and_accumulates_corr_and_mmc(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    with session_scope(engine) as s:
        for rnd, days in ((100, {1: (0.01, 0.001), 2: (0.02, 0.002)}), (101, {1: (-0.03, 0.004)})):
            for day, (corr, mmc) in days.items():
                s.add(
                    Score(
                        tournament=8,
                        numerai_model="m",
                        round_number=rnd,
                        day=day,
                        metric="canon_corr",
                        value=corr,
                    )
                )
                s.add(
                    Score(
                        tournament=8,
                        numerai_model="m",
                        round_number=rnd,
                        day=day,
                        metric="canon_mmc",
                        value=mmc,
                    )
                )
        s.add(
            Score(
                tournament=8, numerai_model="other", round_number=100, day=1, metric="canon_corr", value=0.5
            )
        )
        s.add(
            Payout(
                tournament=8,
                numerai_model="m",
                round_number=100,
                at_risk_nmr=10.0,
                payout_nmr=0.3,
                status="settled",
            )
        )
    rows = performance_table(engine, "m")
    assert [(r.round_number, r.day) for r in rows] == [(100, 2), (101, 1)]
    assert rows[0].corr == pytest.approx(0.02) and rows[0].mmc == pytest.approx(0.002)
    assert rows[1].cum_corr == pytest.approx(-0.01) and rows[1].cum_mmc == pytest.approx(0.006)
    assert (rows[0].payout_nmr, rows[0].payout_status, rows[0].resolved) == (Decimal("0.3"), "settled", True)
    assert (rows[1].payout_nmr, rows[1].payout_status) == (None, "")
    assert {r.numerai_model for r in performance_table(engine)} == {"m", "other"}


@pytest.mark.parametrize("order", [1, -1], ids=["canonical-first", "canonical-last"])
def test_other_corr_names_never_overwrite_corr_whatever_the_row_order(sqlite_url: str, order: int) -> None:
    engine = open_database(sqlite_url)
    rows = [("canon_corr", 0.02), ("v2_corr20", 0.9), ("corr60", -0.5), ("cwmm", 0.7), ("canon_mmc", 0.001)]
    with session_scope(engine) as s:
        for metric, value in rows[::order]:
            s.add(Score(tournament=8, numerai_model="m", round_number=7, day=20, metric=metric, value=value))
    (row,) = performance_table(engine, "m")
    assert row.corr == pytest.approx(0.02) and row.mmc == pytest.approx(0.001)
    from numerflow.tournament.performance import final_scores  # what the dashboard reads: the same rule

    with session_scope(engine) as s:
        final = final_scores(s)["m"][7]
    assert final["corr"] == pytest.approx(0.02) and final["mmc"] == pytest.approx(0.001)


def test_the_name_table_is_exact_and_one_for_everyone() -> None:
    from numerflow.metrics.names import KINDS, SCORE_NAMES, canonical, preference, score_kind
    from numerflow.simulator.scoring import SCORE_NAMES as SIM_STORED

    assert SIM_STORED == ("canon_corr", "canon_mmc", "canon_bmc", "canon_fnc")
    asked = ("V2_CORR20", "mmc", "bmc", "fnc_v3")
    assert tuple(canonical(n) for n in asked) == SIM_STORED
    assert canonical("corr60") == "canon_corr60" and canonical("unheard_of") is None
    assert len(SCORE_NAMES) == sum(len(v) for v in KINDS.values())  # no name in two kinds
    assert preference("canon_corr") < preference("v2_corr20") < preference("unheard_of")
    assert all(score_kind(name) != "corr" for name in ("corr60", "corj60", "cort20", "cwmm", "mcwnm"))


def test_one_rule_for_latest_day_and_resolved(sqlite_url: str) -> None:
    """The CLI table and /api/performance read one function: the day is the latest day of CORR/MMC/BMC/FNC
    (a later tc row does not move it) and a round is resolved when a score row or a settled payout says so."""
    engine = open_database(sqlite_url)
    with session_scope(engine) as s:
        s.add(Score(tournament=8, numerai_model="m", round_number=5, day=3, metric="canon_corr", value=0.1))
        s.add(Score(tournament=8, numerai_model="m", round_number=5, day=9, metric="tc", value=0.2))
        s.add(Score(tournament=8, numerai_model="m", round_number=6, day=2, metric="canon_corr", value=0.1))
        s.add(
            Payout(
                tournament=8, numerai_model="m", round_number=5, at_risk_nmr=1, payout_nmr=0, status="settled"
            )
        )
    rows = performance_table(engine, "m")
    assert [(r.round_number, r.day, r.resolved) for r in rows] == [(5, 3, True), (6, 2, False)]
    (last,) = performance_table(engine, "m", last_rounds=1)
    assert last.round_number == 6 and last.cum_corr == pytest.approx(0.1)


def test_signals_and_crypto_summaries_cover_resolved_rounds_with_their_own_scores(sqlite_url: str) -> None:
    """Signals: Alpha and MPC, Crypto: MMC; mean and sharpe (ddof 0) over resolved rounds, payouts
    summed; an unresolved round counts for nothing."""
    from numerflow.tournament.performance import performance_summary

    engine = open_database(sqlite_url)
    alpha = {200: 0.010, 201: -0.004, 202: 0.016, 203: 0.5}  # 203: still scoring
    mpc = {200: 0.002, 201: 0.006, 202: -0.001, 203: 0.5}
    with session_scope(engine) as s:
        for rnd in alpha:
            resolved = rnd != 203
            for metric, value in (("alpha", alpha[rnd]), ("mpc", mpc[rnd]), ("corr_v4", 0.9)):
                s.add(
                    Score(
                        tournament=11,
                        numerai_model="sig",
                        round_number=rnd,
                        day=60,
                        metric=metric,
                        value=value,
                        resolved=resolved,
                    )
                )
            if resolved:
                s.add(
                    Payout(
                        tournament=11,
                        numerai_model="sig",
                        round_number=rnd,
                        at_risk_nmr=100.0,
                        payout_nmr=rnd - 200.5,
                        status="settled",
                    )
                )
        for rnd, value in ((200, 0.03), (201, 0.01)):
            s.add(
                Score(
                    tournament=12,
                    numerai_model="cry",
                    round_number=rnd,
                    day=20,
                    metric="mmc",
                    value=value,
                    resolved=rnd == 200,
                )
            )
    rows = performance_table(engine, tournament=None)
    cry, sig = performance_summary(rows)  # in name order
    assert (sig.numerai_model, sig.tournament, sig.rounds) == ("sig", 11, 3)
    assert list(sig.stats) == ["alpha", "mpc"]  # the payout scores; CORRv4 is informational
    for kind, values in (("alpha", alpha), ("mpc", mpc)):
        resolved = [values[r] for r in (200, 201, 202)]
        mean = sum(resolved) / 3
        std = (sum((v - mean) ** 2 for v in resolved) / 3) ** 0.5
        assert sig.stats[kind] == (pytest.approx(mean), pytest.approx(mean / std), 3)
    assert sig.payout_nmr == Decimal("-0.5") + Decimal("0.5") + Decimal("1.5")
    assert (cry.tournament, cry.rounds, list(cry.stats)) == (12, 1, ["mmc"])
    mean, sharpe, n = cry.stats["mmc"]
    assert mean == pytest.approx(0.03) and n == 1 and sharpe != sharpe  # one round: no sharpe (NaN)
    assert cry.payout_nmr == 0
