"""Every configured model, of ``[models]`` and ``[signals_models]`` alike, is a configured model of the
service: ``/api/models`` lists it with its tournament, ``/api/models/{name}`` gives its spec, the overview
maps its slots to it, the Jobs page offers its name, and its page and ``/api/models/{name}/scores`` show its
tournament's own scores, round by round and in its versions' validation (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from service_support import (
    PASSWORD,
    Service,
    make_settings,
    record_model_version,
    start_service,
    stop_service,
)

from numerflow.config import ModelSpec, SignalsModelSpec
from numerflow.metrics.signals import signals_validation_scores
from numerflow.service.dashboard.views import validation_view
from numerflow.store.queries.performance import ScoreRow, upsert_scores

#: a Signals version's validation scores as modeling.signals_models.validate_signals records them
SIG_SCORES: dict[str, Any] = {
    "target": "target_20d", "n_rows": 5200, "neutralized": True, "n_dates": 3,
    "alpha_mean": 0.0031, "alpha_std": 0.002, "alpha_sharpe": 1.55, "alpha_max_drawdown": 0.001,
    "corr_mean": 0.0123, "corr_std": 0.01, "corr_sharpe": 1.23, "corr_max_drawdown": 0.004,
    "churn_mean": 0.12, "turnover_mean": 0.08, "per_era_alpha": [0.004, None, 0.0022],
}  # fmt: skip


@pytest.fixture
def svc(tmp_path: Path, db_url: str) -> Iterator[Service]:
    settings = make_settings(tmp_path, db_url)
    settings.models["alpha"] = ModelSpec(algorithm="ridge", numerai_model="alpha_slot", description="classic")
    settings.signals_models["sig"] = SignalsModelSpec(
        algorithm="lightgbm",
        numerai_model="sig_slot",
        challenger_model="sig_chal",
        description="signals on Numerai's features",
    )
    settings.signals_models["sig_b"] = SignalsModelSpec(algorithm="ridge")  # configured, never trained
    settings.signals_models["sig_blend"] = SignalsModelSpec(
        ensemble={"sig": 0.6, "sig_b": 0.4}, numerai_model="blend_slot"
    )
    settings.signals_models["cry"] = SignalsModelSpec(
        tournament="crypto", algorithm="ridge", prices=tmp_path / "prices.parquet", numerai_model="cry_slot"
    )
    service = start_service(settings, background=False, users=True)
    for version in (1, 2):  # a trained Signals model (its first version is its champion)
        record_model_version(service.engine, "sig", version, SIG_SCORES)
    record_model_version(service.engine, "gone", 1)  # a trained model no longer in the config
    yield service
    stop_service(service)


def _models(svc: Service) -> dict[str, dict[str, Any]]:
    r = svc.client.get("/api/models", headers=svc.auth("read"))
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()}


def test_models_of_both_tables_are_listed_with_their_tournament(svc: Service) -> None:
    models = _models(svc)
    assert list(models) == ["alpha", "cry", "gone", "sig", "sig_b", "sig_blend"]
    view = {
        name: (m["configured"], m["tournament"], m["kind"], m["algorithm"], m["numerai_model"], m["versions"])
        for name, m in models.items()
    }
    assert view == {
        "alpha": (True, "classic", "model", "ridge", "alpha_slot", 0),
        "cry": (True, "crypto", "model", "ridge", "cry_slot", 0),
        "gone": (False, None, "", None, None, 1),  # only its registry versions remain
        "sig": (True, "signals", "model", "lightgbm", "sig_slot", 2),
        "sig_b": (True, "signals", "model", "ridge", None, 0),
        "sig_blend": (True, "signals", "ensemble", None, "blend_slot", 0),
    }
    assert models["sig"]["challenger_model"] == "sig_chal"
    assert models["sig"]["description"] == "signals on Numerai's features"


def test_a_signals_models_detail_has_its_spec(svc: Service) -> None:
    c, read = svc.client, svc.auth("read")
    sig = c.get("/api/models/sig", headers=read).json()
    assert sig["configured"] and sig["tournament"] == "signals"
    assert sig["spec"]["algorithm"] == "lightgbm" and sig["spec"]["tournament"] == "signals"
    assert sig["spec"]["numerai_model"] == "sig_slot" and sorted(
        v["version"] for v in sig["version_list"]
    ) == [1, 2]
    blend = c.get("/api/models/sig_blend", headers=read).json()
    assert blend["kind"] == "ensemble" and blend["spec"]["ensemble"] == {"sig": 0.6, "sig_b": 0.4}
    cry = c.get("/api/models/cry", headers=read).json()
    assert cry["tournament"] == "crypto" and cry["spec"]["prices"].endswith("prices.parquet")
    assert c.get("/api/models/sig_b/versions", headers=read).json() == []  # configured, not trained: no 404
    gone = c.get("/api/models/gone", headers=read).json()
    assert gone["spec"] is None and gone["tournament"] is None


def test_an_unknown_model_404_names_both_tables(svc: Service) -> None:
    for path in ("/api/models/nobody", "/api/models/nobody/versions", "/api/models/nobody/scores"):
        r = svc.client.get(path, headers=svc.auth("read"))
        assert r.status_code == 404, (path, r.text)
        assert r.json()["detail"] == (
            "no model named 'nobody' in [models] or [signals_models] "
            "(configured: alpha, cry, sig, sig_b, sig_blend)"
        )


def test_the_overview_maps_signals_and_crypto_slots_to_their_models(svc: Service) -> None:
    r = svc.client.get("/api/overview", headers=svc.auth("read"))
    assert r.status_code == 200, r.text
    rows = {m["numerai_model"]: m for m in r.json()["models"]}
    view = {slot: (m["model_name"], m["stage"], m["tournament"]) for slot, m in rows.items()}
    assert view == {
        "alpha_slot": ("alpha", "champion", 8),
        "blend_slot": ("sig_blend", "champion", 11),
        "cry_slot": ("cry", "champion", 12),
        "sig_chal": ("sig", "challenger", 11),
        "sig_slot": ("sig", "champion", 11),
    }
    assert rows["sig_slot"]["deployed_version"] == 1 and rows["cry_slot"]["deployed_version"] is None
    r = svc.client.post("/api/models/sig/promote", headers=svc.auth("operate"), json={"version": 2})
    assert r.status_code == 200, r.text
    rows = {
        m["numerai_model"]: m
        for m in svc.client.get("/api/overview", headers=svc.auth("read")).json()["models"]
    }
    assert rows["sig_slot"]["deployed_version"] == 2


def test_the_dashboard_offers_and_shows_signals_models(svc: Service) -> None:
    c = svc.client
    assert (
        c.post("/api/auth/login", json={"username": "user_operate", "password": PASSWORD}).status_code == 200
    )
    jobs = c.get("/jobs")
    assert jobs.status_code == 200
    picker = jobs.text.split('id="job-model">', 1)[1].split("</select>", 1)[0]
    assert picker == "".join(f"<option>{n}</option>" for n in ("alpha", "cry", "sig", "sig_b", "sig_blend"))
    page = c.get("/models/sig")
    assert page.status_code == 200
    assert '<span class="muted small" id="model-kind">signals · model · lightgbm</span>' in page.text
    assert "sig_slot" in page.text
    overview = c.get("/")
    assert 'href="/models/cry"' in overview.text and 'href="/models/sig_blend"' in overview.text
    missing = c.get("/models/nobody")
    assert missing.status_code == 404 and "[signals_models]" in missing.text


def _store_scores(svc: Service, tournament: int, slot: str, scores: dict[int, dict[str, float]]) -> None:
    rows = [
        ScoreRow(
            round_number=rnd, day=20, metric=metric, value=value, percentile=None, date=None, resolved=True
        )
        for rnd, values in scores.items()
        for metric, value in values.items()
    ]
    upsert_scores(svc.engine, tournament, slot, rows)


def _scores(svc: Service, name: str) -> dict[str, Any]:
    r = svc.client.get(f"/api/models/{name}/scores", headers=svc.auth("read"))
    assert r.status_code == 200, r.text
    return r.json()


def test_each_models_scores_are_its_tournaments_own(svc: Service) -> None:
    # Numerai's names for them: Signals alpha/mpc/corr_v4 (and churn, not shown), Crypto mmc/corr, Classic
    sig_700 = {"alpha": 0.0125, "meta_portfolio_contribution": -0.004, "corr_v4": 0.02, "churn": 0.3}
    _store_scores(svc, 11, "sig_slot", {700: sig_700, 701: {"alpha": -0.01}})
    _store_scores(svc, 11, "sig_chal", {700: {"alpha": 0.02, "mpc": 0.001}})
    _store_scores(svc, 12, "cry_slot", {700: {"mmc": 0.007, "corr": 0.03}})
    _store_scores(
        svc, 8, "alpha_slot", {700: {"canon_corr": 0.025, "canon_mmc": 0.005, "bmc": 0.001, "fnc_v3": 0.01}}
    )

    sig = _scores(svc, "sig")
    assert sig["tournament"] == 11
    assert sig["metrics"] == [
        {"key": "alpha", "label": "ALPHA"},
        {"key": "mpc", "label": "MPC"},
        {"key": "corr_v4", "label": "CORRv4"},
    ]
    champ = sig["champion"]
    assert champ["numerai_model"] == "sig_slot" and champ["version"] == 1
    assert [
        (r["round"], r["alpha"], r["mpc"], r["corr_v4"], r["corr"], r["mmc"]) for r in champ["rounds"]
    ] == [
        (700, 0.0125, -0.004, 0.02, None, None),
        (701, -0.01, None, None, None, None),
    ]
    assert [(r["round"], r["alpha"], r["mpc"]) for r in sig["challenger"]["rounds"]] == [(700, 0.02, 0.001)]

    cry = _scores(svc, "cry")
    assert cry["tournament"] == 12 and [m["label"] for m in cry["metrics"]] == ["MMC", "CORR"]
    assert [(r["mmc"], r["corr"], r["alpha"]) for r in cry["champion"]["rounds"]] == [(0.007, 0.03, None)]

    classic = _scores(svc, "alpha")  # Classic's answer as before, with the new fields null
    assert classic["tournament"] == 8 and [m["label"] for m in classic["metrics"]] == [
        "CORR",
        "MMC",
        "BMC",
        "FNC",
    ]
    (row,) = classic["champion"]["rounds"]
    assert row == {
        "round": 700, "corr": 0.025, "mmc": 0.005, "bmc": 0.001, "fnc": 0.01, "day": 20, "resolved": True,
        "alpha": None, "mpc": None, "corr_v4": None,
    }  # fmt: skip
    assert _scores(svc, "sig_b")["champion"] == {"numerai_model": None, "version": None, "rounds": []}
    assert _scores(svc, "sig_b")["metrics"][0]["key"] == "alpha"  # no slot, no scores: still its names
    assert _scores(svc, "gone")["tournament"] == 8  # no longer configured: Classic's names

    c = svc.client
    assert c.post("/api/auth/login", json={"username": "user_read", "password": PASSWORD}).status_code == 200
    page = c.get("/models/sig").text
    table = page.split('id="round-scores">', 1)[1].split("</table>", 1)[0]
    assert '<th class="num">ALPHA</th><th class="num">MPC</th><th class="num">CORRv4</th>' in table
    assert '<th class="num">CORR</th>' not in table and "BMC" not in table
    assert '<td>701</td><td class="num">-0.0100</td><td class="num">—</td>' in table
    assert (
        '<td>700</td><td class="num">+0.0125</td><td class="num">-0.0040</td><td class="num">+0.0200</td>'
        in table
    )
    assert "<h2>Cumulative ALPHA and MPC</h2>" in page
    h2h = page.split('id="head-to-head">', 1)[1].split("</table>", 1)[0]
    assert '<th class="num">Champion ALPHA</th>' in h2h and '<th class="num">Challenger MPC</th>' in h2h
    assert '<td class="num">+0.0125</td><td class="num">+0.0200</td>' in h2h  # champion, challenger ALPHA
    assert '"metrics": [{"key": "alpha", "label": "ALPHA"}' in page  # the charts draw what the table shows
    cry_page = c.get("/models/cry").text
    assert "<h2>Cumulative MMC and CORR</h2>" in cry_page and '<td class="num">+0.0070</td>' in cry_page
    classic_page = c.get("/models/alpha").text.split('id="round-scores">', 1)[1]
    assert (
        '<th class="num">CORR</th><th class="num">MMC</th><th class="num">BMC</th><th class="num">FNC</th>'
        in classic_page
    )


def test_each_models_versions_and_validation_are_its_tournaments_own(svc: Service) -> None:
    c, read = svc.client, svc.auth("read")
    kinds = {n: c.get(f"/api/models/{n}", headers=read).json()["validation"] for n in ("sig", "cry", "alpha")}
    assert kinds == {
        "sig": [
            {"key": "alpha", "label": "ALPHA"},
            {"key": "corr", "label": "CORR"},
            {"key": "churn", "label": "CHURN"},
            {"key": "turnover", "label": "TURNOVER"},
        ],
        "cry": [],  # Numerai's Crypto files have no validation part: its versions record none
        "alpha": [
            {"key": "corr", "label": "CORR"},
            {"key": "mmc", "label": "MMC"},
            {"key": "bmc", "label": "BMC"},
            {"key": "fnc", "label": "FNC"},
        ],
    }
    (v1,) = [v for v in c.get("/api/models/sig", headers=read).json()["version_list"] if v["version"] == 1]
    assert v1["scores"]["alpha_mean"] == 0.0031 and v1["scores"]["per_era_alpha"] == [0.004, None, 0.0022]
    # every summary key the one Signals rule computes is a row of the page's report
    summary, _ = signals_validation_scores(
        np.array([0.1, 0.5, 0.9, 0.2, 0.4, 0.8]),
        np.array([0.0, 0.5, 1.0, 0.25, 0.5, 0.75]),
        np.array(["2024-01-05"] * 3 + ["2024-01-12"] * 3),
        np.array(["a", "b", "c"] * 2),
    )
    assert set(summary) <= {key for key, _, _ in validation_view(11).rows}

    assert (
        c.post("/api/auth/login", json={"username": "user_operate", "password": PASSWORD}).status_code == 200
    )
    page = c.get("/models/sig").text
    versions = page.split('id="versions">', 1)[1].split("</table>", 1)[0]
    head = versions.split("</thead>", 1)[0]
    assert (
        '<th class="num">Features</th><th class="num">ALPHA</th><th class="num">Sharpe</th>'
        '<th class="num">CORR</th><th class="num">CHURN</th><th class="num">TURNOVER</th><th></th>' in head
    )
    assert "MMC" not in head and "BMC" not in head and "Payout sim" not in head
    row = versions.split('<tr data-version="1">', 1)[1].split("</tr>", 1)[0]
    cells = [cell.split("<", 1)[0] for cell in row.split('<td class="num">')[2:]]
    assert cells == ["+0.0031", "+1.55", "+0.0123", "0.1200", "0.0800"]
    report = page.split('id="validation-report">', 1)[1].split("</table>", 1)[0]
    assert report.startswith(
        '<tr><th>ALPHA mean</th><td class="num">+0.0031</td></tr><tr><th>ALPHA std</th><td class="num">0.0020'
    )
    for shown in (
        '<th>ALPHA sharpe</th><td class="num">+1.55</td>',
        '<th>CORR mean</th><td class="num">+0.0123</td>',
        '<th>CHURN mean</th><td class="num">0.1200</td>',
        '<th>TURNOVER mean</th><td class="num">0.0800</td>',
        '<th>validation dates</th><td class="num">3</td>',
        '<th>validation rows</th><td class="num">5,200</td>',
        '<th>target</th><td class="num">target_20d</td>',
        '<th>against Numerai&#39;s neutralizers</th><td class="num">yes</td>',
    ):
        assert shown in report, shown
    assert "MMC" not in report and "BMC" not in report and "payout" not in report
    assert "<h2>Validation ALPHA, cumulative by date</h2>" in page and "Validation CORR" not in page
    charts = json.loads(page.split('id="chart-data">', 1)[1].split("</script>", 1)[0])
    assert charts["validation"] == {
        "version": 1, "series": [0.004, None, 0.0022], "unit": "date", "none": "No validation scores."
    }  # fmt: skip

    cry = c.get("/models/cry").text  # Crypto: no validation columns, the reason instead of a report
    head = cry.split('id="versions">', 1)[1].split("</thead>", 1)[0]
    assert '<th class="num">Features</th><th></th>' in head
    assert '<p class="muted" id="no-validation">Crypto versions record no validation scores' in cry
    assert "<h2>Validation scores</h2>" in cry and 'colspan="6"' in cry  # "No versions yet" spans them all

    record_model_version(svc.engine, "alpha", 1, {"corr_mean": 0.02, "corr_sharpe": 1.5, "mmc_mean": 0.004,
                                                  "bmc_mean": -0.001, "payout_final": 1.234, "n_eras": 3,
                                                  "per_era_corr": [0.01, 0.02]})  # fmt: skip
    classic = c.get("/models/alpha").text  # Classic: as ever
    head = classic.split('id="versions">', 1)[1].split("</thead>", 1)[0]
    assert (
        '<th class="num">Features</th><th class="num">CORR</th><th class="num">Sharpe</th>'
        '<th class="num">MMC</th><th class="num">BMC</th><th class="num">Payout sim</th><th></th>' in head
    )
    row = classic.split('<tr data-version="1">', 1)[1].split("</tr>", 1)[0]
    cells = [cell.split("<", 1)[0] for cell in row.split('<td class="num">')[2:]]
    assert cells == ["+0.0200", "+1.50", "+0.0040", "-0.0010", "1.234"]
    report = classic.split('id="validation-report">', 1)[1].split("</table>", 1)[0]
    assert report == "".join(
        f'<tr><th>{label}</th><td class="num">{value}</td></tr>'
        for label, value in [
            ("CORR mean", "+0.0200"),
            ("CORR sharpe", "+1.50"),
            ("MMC mean", "+0.0040"),
            ("BMC mean", "-0.0010"),
            ("simulated payout (stake 1)", "1.234"),
            ("validation eras", "3"),
        ]
    )
    assert "<h2>Validation CORR, cumulative by era</h2>" in classic
    charts = json.loads(classic.split('id="chart-data">', 1)[1].split("</script>", 1)[0])
    assert charts["validation"]["series"] == [0.01, 0.02] and charts["validation"]["unit"] == "era"
