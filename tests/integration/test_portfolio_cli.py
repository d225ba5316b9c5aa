"""``numerflow backtest | risk | attribution | stake plan`` from the command line: synthetic data, real
models, and the simulator over HTTP for the stake plan. Bad input is one line, exit 2, nothing staked."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from tournament_support import Project, Trained, make_project, train_once

from numerflow.store import session_scope
from numerflow.store.tables import Payout, StakeChange

MODELS = """
[models.ridge]
algorithm = "ridge"
params = { alpha = 10.0 }
features = "all"

[models.lgbm]
algorithm = "lightgbm"
params = { n_estimators = 15, num_leaves = 8, learning_rate = 0.1, random_state = 5 }
features = "medium"
"""


@pytest.fixture
def project(project_dir: Path, synthetic_dir: Path) -> Path:
    (project_dir / "data").mkdir()
    (project_dir / "data" / "v5.3").symlink_to(synthetic_dir, target_is_directory=True)
    config = project_dir / "numerflow.toml"
    config.write_text('[paths]\ndata_dir = "data"\nartifacts_dir = "artifacts"\n' + MODELS)
    return project_dir


def test_backtest_is_reproducible_and_feeds_risk_and_attribution(project: Path, cli) -> None:
    code, out, err = cli("backtest", "lgbm", "--from", "0030", "--to", "0056", "--retrain-every", "10")
    assert code == 0, err
    assert "walk-forward, embargo 4 eras" in out and "max drawdown" in out and "burning rounds" in out
    folder = project / "artifacts" / "backtests" / "lgbm"
    first = (folder / "ledger.csv").read_text()
    doc = json.loads((folder / "backtest.json").read_text())
    prov = doc["provenance"]
    assert set(prov["data_hashes"]) >= {
        "train.parquet",
        "validation.parquet",
        "features.json",
        "meta_model.parquet",
    }
    assert prov["seed"] == 5 and prov["numerflow_version"] and prov["spec"]["params"]["num_leaves"] == 8
    assert (prov["from_era"], prov["to_era"], prov["retrain_every"]) == ("0030", "0056", 10)
    # folds: 0030-0039, 0040-0049, 0050-0056; each trained on eras more than 4 before its block
    assert [f["train_eras"] for f in doc["folds"]] == ["0001-0025", "0001-0035", "0001-0045"]
    per_era = (folder / "per_era.csv").read_text().splitlines()
    assert len(per_era) == 1 + 27  # header + eras 0030..0056
    assert doc["summary"]["rounds"] == 27 * 5

    code, _, err = cli("backtest", "lgbm", "--from", "0030", "--to", "0056", "--retrain-every", "10")
    assert code == 0, err
    assert (folder / "ledger.csv").read_text() == first  # the same command gives the same ledger

    code, _, err = cli("backtest", "ridge", "--from", "0030", "--to", "0056")
    assert code == 0, err
    code, out, err = cli("risk")
    assert code == 0, err
    out = " ".join(out.split())
    assert "lgbm" in out and "ridge" in out and "account" in out and "correlation of payouts" in out
    assert "VaR95" in out and "by regime" in out
    code, out, err = cli("attribution", "lgbm", "--against", "ridge", "--last", "20")
    assert code == 0, err
    out = " ".join(out.split())
    assert "score by feature group, last 20 eras" in out and "(residual)" in out
    assert "CORR" in out and "MMC" in out and "lgbm vs ridge" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("backtest", "ridge", "--from", "0099"),
            "--from era '0099' is not in the data; eras run from 0001 to 0056",
        ),
        (("backtest", "ridge", "--from", "0040", "--to", "0035"), "--from era 0040 is after --to era 0035"),
        (("backtest", "ridge", "--from", "0003"), "no training eras before it"),
        (("backtest", "ridge", "--retrain-every", "0"), "--retrain-every 0 must be 1 era or more"),
        (("backtest", "nosuch"), "nosuch"),
        (("backtest", "ridge", "--stake", "0"), "--stake 0 NMR must be more than 0"),
        (("risk", "ridge"), "model 'ridge' has no backtest yet; run 'numerflow backtest ridge' first"),
        (("attribution", "lgbm"), "model 'lgbm' has no backtest yet"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(project: Path, cli, args: tuple[str, ...], message: str) -> None:
    code, out, err = cli(*args)
    assert code == 2, (out, err)
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not (project / "artifacts" / "backtests").exists() or args[0] != "backtest"


def test_risk_with_too_short_a_history_is_one_line(project: Path, cli) -> None:
    code, _, err = cli("backtest", "ridge", "--from", "0055", "--to", "0056")  # 10 rounds
    assert code == 0, err
    code, _, err = cli("risk", "ridge")
    assert code == 2 and "'ridge' has 10 rounds of history; risk figures need at least 20" in " ".join(
        err.split()
    )


# ----------------------------------------------------------------------------------- stake plan (simulator)
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_once(tmp_path_factory.mktemp("portfolio_trained"))


@pytest.fixture
def sim_project(tmp_path: Path, trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "v5.3").symlink_to(trained.data_dir / "v5.3", target_is_directory=True)
    try:
        yield from make_project(tmp_path, trained, monkeypatch)
    finally:  # backtests land in the module's shared artifacts folder: leave it as it was
        shutil.rmtree(trained.artifacts_dir / "backtests", ignore_errors=True)


def _stake_rows(project: Project) -> list[tuple[str, str, Decimal]]:
    with session_scope(project.engine()) as s:
        return [
            (r.numerai_model, r.status, r.to_nmr)
            for r in s.scalars(select(StakeChange).order_by(StakeChange.id))
        ]


def test_stake_plan_applies_only_with_yes_and_within_the_guard_rails(sim_project: Project, cli) -> None:
    for name in ("ridge_a", "lgbm_b"):
        code, _, err = cli("backtest", name)
        assert code == 0, err
    client = sim_project.client()
    before = {slot: client.stake_value(slot) for slot in ("sim_model_1", "sim_model_2")}

    code, out, err = cli("stake", "plan", "--budget", "30", "--method", "mean-variance")
    assert code == 0, err
    out = " ".join(out.split())
    assert (
        "stake plan (mean-variance" in out and "backtest of ridge_a" in out and "current vs proposed" in out
    )
    code, out, err = cli("stake", "plan", "--budget", "30", "--apply")
    assert code == 0 and "nothing was changed: add --yes" in " ".join(out.split())
    assert {s: client.stake_value(s) for s in before} == before and _stake_rows(sim_project) == []

    code, out, err = cli("stake", "plan", "--budget", "30", "--apply", "--yes")
    assert code == 0, err
    rows = _stake_rows(sim_project)
    assert rows and all(status == "requested" for _, status, _ in rows)
    for slot, _, to in rows:
        assert client.stake_value(slot) == to  # Decimal NMR on both sides: exact
        assert abs(to - before.get(slot, client.stake_value(slot))) <= 5  # max_stake_change_nmr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--method", "sharpe"), "method 'sharpe' is unknown; use one of risk-parity, mean-variance, kelly"),
        (("--budget", "lots"), "--budget 'lots' is not a number"),
        (("--budget", "1"), "budget 1 NMR is below the minimum stakes"),
    ],
)
def test_stake_plan_bad_input_stakes_nothing(
    sim_project: Project, cli, args: tuple[str, ...], message: str
) -> None:
    for name in ("ridge_a", "lgbm_b"):
        assert cli("backtest", name)[0] == 0
    with sim_project.config.open("a") as fh:
        fh.write("[portfolio]\nmin_stake_nmr = 2.0\n")
    code, _, err = cli("stake", "plan", *args, "--apply", "--yes")
    assert code == 2, err
    assert message in " ".join(err.split())
    assert _stake_rows(sim_project) == []


def test_stake_plan_without_history_is_one_line(sim_project: Project, cli) -> None:
    code, _, err = cli("stake", "plan", "--apply", "--yes")
    assert code == 2 and "no model has 60 rounds of history" in " ".join(err.split())
    assert _stake_rows(sim_project) == []


def _settled(project: Project, slot: str, payouts: list[float], at_risk: float = 10.0) -> None:
    """Settled live payouts as ``perf sync`` stores them (the drawdown rule's input)."""
    with session_scope(project.engine()) as s:
        for k, p in enumerate(payouts):
            s.add(
                Payout(
                    numerai_model=slot,
                    round_number=900 + k,
                    at_risk_nmr=at_risk,
                    payout_nmr=p,
                    status="settled",
                )
            )


def test_the_round_job_applies_the_drawdown_rule_only_when_enabled(sim_project: Project, cli) -> None:
    from numerflow.tournament.round import run_round

    # sim_model_1 made +10% then lost 3 x 5%: 1 - 0.95^3 = 14.3% below its peak; sim_model_2 only gained
    _settled(sim_project, "sim_model_1", [1.0, -0.5, -0.5, -0.5])
    _settled(sim_project, "sim_model_2", [0.2, 0.3])
    client = sim_project.client()
    assert client.stake_value("sim_model_1") == 10
    report = run_round(sim_project.settings, sim_project.engine(), client)
    assert report.ok and report.stake_cuts == [] and _stake_rows(sim_project) == []  # off by default

    with sim_project.config.open("a") as fh:
        fh.write("[portfolio]\ndrawdown_rule_enabled = true\ndrawdown_cut = 0.1\ndrawdown_keep = 0.2\n")
    sim_project.sim.engine.open_round()
    code, out, err = cli("round", "run")
    assert code == 0, err
    out = " ".join(out.split())
    # 10 -> 2 NMR would move 8; tournament.max_stake_change_nmr = 5 allows 10 -> 5 in this round
    assert "drawdown rule: sim_model_1 at 14.3% below its peak: stake 10" in out and "-> 5" in out
    # a decrease is a release: the server keeps 10 at risk until it is paid out, the request is recorded
    with session_scope(sim_project.engine()) as s:
        rows = list(s.scalars(select(StakeChange)))
    assert [(r.numerai_model, r.status, r.to_nmr) for r in rows] == [("sim_model_1", "requested", 5.0)]
    assert "drawdown rule: live drawdown 14.3% > portfolio.drawdown_cut 10%" in rows[0].reason


def test_risk_on_live_payouts_from_the_store(project: Path, cli) -> None:
    from numerflow.config import load_settings
    from numerflow.store import open_database

    engine = open_database(load_settings(project / "numerflow.toml").database_url)
    with session_scope(engine) as s:
        for k in range(30):
            for slot, payout in (("slot_a", 0.2 if k % 3 else -0.3), ("slot_b", 0.1 if k % 2 else -0.1)):
                s.add(Payout(numerai_model=slot, round_number=800 + k, at_risk_nmr=10.0, payout_nmr=payout,
                             status="settled"))  # fmt: skip
        s.add(
            Payout(
                numerai_model="slot_a", round_number=900, at_risk_nmr=10.0, payout_nmr=None, status="pending"
            )
        )
    code, out, err = cli("risk", "--live")
    assert code == 0, err
    out = " ".join(out.split())
    assert "slot_a" in out and "slot_b" in out and "account" in out
    # slot_a: 20 rounds at +2%, 10 at -3%: burns a third of its rounds; VaR95 per round = 3% of the stake
    assert "slot_a +0.33% 33.3% 3.0% 3.0%" in out
    code, _, err = cli("risk", "--live", "slot_c")
    assert code == 2 and "no settled live payouts for 'slot_c'; models with some: slot_a, slot_b" in " ".join(
        err.split()
    )
