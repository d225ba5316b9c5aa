"""`numerflow demo`: the whole job end to end against the in-process simulator, on a small world (its
Classic models and its Signals leg in one run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sim_support import CALENDAR_START

from numerflow.cli.demo import _show as show_step
from numerflow.demo import DemoOptions, run_demo
from numerflow.errors import ConfigError
from numerflow.metrics.payout import SIGNALS_RULE


@pytest.mark.slow
def test_demo_runs_every_step_once(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    options = DemoOptions(workdir=workdir, n_eras=60, rows_per_era=200, n_features=30, start=CALENDAR_START)
    steps = dict(run_demo(options))
    for step, payload in steps.items():  # `numerflow demo` prints every step's payload
        show_step(step, payload)
    assert list(steps) == [
        "simulator", "config", "download", "check", "train", "cv", "report", "signals_data", "signals_train",
        "crypto", "round", "next_round", "perf",
    ]  # fmt: skip

    downloaded = dict(steps["download"]["files"])
    assert {"train.parquet", "validation.parquet", "features.json"} <= set(downloaded)
    assert all(size > 0 for size in downloaded.values())
    assert not steps["check"]["report"].errors

    assert steps["train"]["model"] == "blend@1"  # the last of lgbm, ridge, blend
    assert len(steps["cv"]["result"].folds) == 5

    html = Path(steps["report"]["html"]).read_text()
    assert "Plotly.newPlot" in html
    assert not re.search(r"<script[^>]+src=", html)  # plotly.js is inlined: the report works offline
    assert set(steps["report"]["summary"].index) == {"lgbm@1", "ridge@1", "blend@1"}

    # Signals: Numerai's files, the synthetic prices checked and every ticker mapped to the round's universe
    signals_files = dict(steps["signals_data"]["files"])
    assert {"train.parquet", "validation.parquet", "live.parquet"} <= set(signals_files)
    assert all(size > 0 for size in signals_files.values())
    prices = steps["signals_data"]["report"]
    assert prices.ok and prices.mapping is not None
    assert prices.mapping.mapped == 200 and not prices.mapping.unmapped and not prices.mapping.missing
    trained_signals = {ref: scores for ref, _, scores in steps["signals_train"]["models"]}
    assert set(trained_signals) == {"sig@1", "sig_ridge@1"}
    for scores in trained_signals.values():  # Signals' own validation metrics
        assert scores["target"] == "target_chili_60" and scores["neutralized"]
        for key in ("alpha_mean", "alpha_sharpe", "churn_mean", "turnover_mean"):
            assert scores[key] is not None, key

    # Crypto: Numerai's files, the synthetic prices of its symbols, a model trained on their features
    crypto = steps["crypto"]
    assert {"train_targets.parquet", "live_universe.parquet"} == {name for name, _ in crypto["files"]}
    assert crypto["models"] == ["cry@1", "cry_lgbm@1"] and Path(crypto["prices"]).stat().st_size > 0
    assert len(crypto["cv"].folds) == 5 and crypto["cv"].summary["embargo_eras"] > 0

    first, again = steps["round"]["report"], steps["round"]["again"]
    assert sorted((o.tournament, o.numerai_model) for o in first.submitted) == [
        (8, "sim_model_1"), (8, "sim_model_2"), (8, "sim_model_3"),
        (11, "sim_signals"), (11, "sim_signals_2"), (12, "sim_crypto"), (12, "sim_crypto_2"),
    ]  # fmt: skip
    assert first.ok and not again.submitted and "already submitted" in again.note
    assert "signals: every model already submitted" in again.note
    following = steps["next_round"]["report"]
    assert steps["next_round"]["round"] == steps["round"]["round"] + 1
    assert following.ok and len(following.submitted) == 7

    rows = steps["perf"]["rows"]
    classic = [r for r in rows if r.tournament == 8]
    assert {r.numerai_model for r in classic} == {"sim_model_1", "sim_model_2", "sim_model_3"}
    assert all(r.resolved and r.payout_status == "settled" for r in rows)
    assert all(r.corr is not None and r.mmc is not None for r in classic)
    # Crypto rounds scored on MMC and CORR, like Numerai scores them; two stakers: MMC is not zero
    crypto_rows = {(r.numerai_model, r.round_number): r for r in rows if r.tournament == 12}
    first_round = steps["round"]["round"]
    assert set(crypto_rows) == {
        (m, n) for m in ("sim_crypto", "sim_crypto_2") for n in (first_round, first_round + 1)
    }
    assert all(r.corr is not None and r.mmc is not None for r in crypto_rows.values())
    assert any(r.mmc != 0 for r in crypto_rows.values())

    # the Signals rounds resolved after their 60 scoring days, their scores synced under Signals' names
    signals = {(r.numerai_model, r.round_number): r for r in rows if r.tournament == 11}
    number = steps["round"]["round"]
    assert set(signals) == {(m, n) for m in ("sim_signals", "sim_signals_2") for n in (number, number + 1)}
    assert all(r.day == 60 and r.alpha is not None and r.corr_v4 is not None for r in signals.values())
    assert all(r.corr is None and r.mmc is None for r in signals.values())
    for slot in ("sim_signals", "sim_signals_2"):
        # Numerai's churn gate: nothing at risk in a model's first round (no MPC without a stake) ...
        assert signals[slot, number].at_risk_nmr == 0 and signals[slot, number].payout_nmr == 0
        assert signals[slot, number].mpc is None
        # ... the stake counts in its second: paid by the Signals rule on Alpha and MPC
        second = signals[slot, number + 1]
        assert second.at_risk_nmr == 5 and second.mpc is not None
        expected = SIGNALS_RULE.payout(5, second.alpha, second.mpc)  # pf 1: 10 NMR at risk < 36,000
        assert float(second.payout_nmr) == pytest.approx(float(expected), abs=1e-4)


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="was not made by 'numerflow demo'"):
        next(run_demo(DemoOptions(workdir=precious)))
    assert (precious / "notes.txt").read_text() == "keep me"
