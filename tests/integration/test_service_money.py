"""NMR amounts through the REST API and the dashboard: exact decimal strings (as Numerai's API writes them),
never binary floats, on SQLite and PostgreSQL; the OpenAPI document says so; a bad amount in a request is
a 422 naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from service_support import PASSWORD, Service, make_settings, start_service, stop_service

from numerflow.store import session_scope
from numerflow.store.tables.tournament import Payout, Round, Score, StakeChange

LONG = "1234.123456789012345678"  # 22 significant digits: a float keeps about 16
TENTH_PLUS_FIFTH = Decimal("0.1") + Decimal("0.2")  # "0.3"; as floats 0.30000000000000004
TINY = "0.000000000000000001"  # str(Decimal) would write 1E-18
LARGEST = "123456789012345678.123456789012345678"  # NUMERIC(36, 18) full


@pytest.fixture
def svc(tmp_path: Path, db_url: str) -> Iterator[Service]:
    service = start_service(make_settings(tmp_path, db_url), background=False, users=True)
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with session_scope(service.engine) as s:
        s.add(Round(number=41, status="complete", first_seen_at=now))
        s.add(Round(number=42, status="open", first_seen_at=now))
        s.add(Score(numerai_model="exact", round_number=42, day=20, metric="canon_corr", value=0.01))
        s.add(
            Payout(
                numerai_model="exact", round_number=41, at_risk_nmr=LARGEST, payout_nmr=TINY, status="settled"
            )
        )
        s.add(
            Payout(
                numerai_model="exact",
                round_number=42,
                at_risk_nmr=Decimal(LONG),
                payout_nmr=TENTH_PLUS_FIFTH,
                status="pending",
            )
        )
        s.add(
            StakeChange(
                numerai_model="exact",
                round_number=42,
                from_nmr=Decimal("0.1"),
                to_nmr=Decimal(LONG),
                delta_nmr=Decimal(LONG) - Decimal("0.1"),
                status="requested",
            )
        )
    yield service
    stop_service(service)


def test_amounts_come_back_exactly_as_decimal_strings(svc: Service) -> None:
    c, h = svc.client, svc.auth("read")
    payouts = c.get("/api/payouts", headers=h)
    assert [(p["round_number"], p["at_risk_nmr"], p["payout_nmr"]) for p in payouts.json()] == [
        (42, LONG, "0.3"),
        (41, LARGEST, TINY),
    ]
    assert f'"at_risk_nmr":"{LONG}","payout_nmr":"0.3"' in payouts.text  # strings on the wire
    detail = c.get("/api/rounds/42", headers=h).json()
    assert [(p["at_risk_nmr"], p["payout_nmr"]) for p in detail["payouts"]] == [(LONG, "0.3")]
    perf = {r["round"]: r for r in c.get("/api/performance/exact", headers=h).json()}
    assert (perf[42]["at_risk_nmr"], perf[42]["payout_nmr"]) == (LONG, "0.3")
    assert (perf[41]["at_risk_nmr"], perf[41]["payout_nmr"]) == (LARGEST, TINY)
    assert isinstance(perf[42]["corr"], float)  # scores stay JSON numbers
    (stake,) = c.get("/api/stakes", headers=h).json()
    assert stake["stake_nmr"] == LONG
    change = stake["last_change"]
    assert (change["from_nmr"], change["to_nmr"], change["delta_nmr"]) == (
        "0.1",
        LONG,
        "1234.023456789012345678",
    )
    assert c.get("/api/stakes/exact/changes", headers=h).json() == [change]
    (row,) = c.get("/api/overview", headers=h).json()["models"]
    assert (row["payout_nmr"], row["stake_nmr"], row["payout_round"]) == ("0.3", LONG, 42)
    assert Decimal(row["payout_nmr"]) == TENTH_PLUS_FIFTH  # the sum, not 0.30000000000000004


def test_dashboard_pages_format_the_exact_amounts(svc: Service) -> None:
    c = svc.client
    assert c.post("/api/auth/login", json={"username": "user_read", "password": PASSWORD}).status_code == 200
    overview = c.get("/")
    assert overview.status_code == 200
    assert ">+0.300 <span" in overview.text  # the payout, pending
    assert ">1234.12</td>" in overview.text  # the stake
    rounds = c.get("/rounds").text
    assert "payout +0.300 NMR" in rounds and "payout +0.000 NMR" in rounds  # 1E-18 is not "+1E-18"


def _nmr_fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every ``*_nmr`` property of every component schema: ``Model.field`` -> its (non-null) schema."""
    out = {}
    for model, body in schema["components"]["schemas"].items():
        for name, prop in body.get("properties", {}).items():
            if name.endswith("_nmr"):
                options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
                assert len(options) == 1, (model, name, prop)
                out[f"{model}.{name}"] = options[0]
    return out


def test_openapi_says_nmr_amounts_are_decimal_strings(svc: Service) -> None:
    doc = svc.client.get("/api/openapi.json", headers=svc.auth("read")).json()
    fields = _nmr_fields(doc)
    assert {
        "OverviewModel.payout_nmr",
        "OverviewModel.stake_nmr",
        "PayoutOut.at_risk_nmr",
        "PayoutOut.payout_nmr",
        "PerformanceRow.at_risk_nmr",
        "PerformanceRow.payout_nmr",
        "StakeChangeOut.from_nmr",
        "StakeChangeOut.to_nmr",
        "StakeChangeOut.delta_nmr",
        "StakeOut.stake_nmr",
    } <= set(fields)
    for name, prop in fields.items():
        assert prop["type"] == "string" and prop["pattern"].startswith("^-?[0-9]"), name
        assert "decimal string" in prop["description"], name
    # the one request that takes NMR says it takes a string (exact) or a number
    budget = doc["components"]["schemas"]["PlanIn"]["properties"]["budget"]
    (amount,) = [p for p in budget["anyOf"] if p.get("type") != "null"]
    assert [p["type"] for p in amount["anyOf"]] == ["string", "number"]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ('"NaN"', "an NMR amount must be a decimal like"),
        ("NaN", "an NMR amount must be a decimal like"),  # Python's JSON reads a bare NaN
        ("Infinity", "an NMR amount must be a decimal like"),
        ('"1e3"', "not '1e3'"),
        ('"lots"', "not 'lots'"),
        ('"１２"', "an NMR amount must be a decimal like"),  # full-width digits are not digits here
        ("true", "not True"),
        ('"1.1234567890123456789"', "18 after the point"),  # finer than NMR's 18 decimals
        ('"-5"', "a budget is 0 or more NMR, below 100000000"),
        ("100000000", "a budget is 0 or more NMR, below 100000000"),
    ],
)
def test_a_bad_nmr_amount_in_a_request_is_a_422_naming_the_field(svc: Service, raw: str, says: str) -> None:
    body = f'{{"budget": {raw}, "method": "kelly"}}'
    r = svc.client.post(
        "/api/portfolio/plan",
        content=body,
        headers={**svc.auth("operate"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("body.budget: ") and says in detail and "\n" not in detail, detail


def test_json_numbers_and_strings_are_both_taken_as_budgets() -> None:
    from numerflow.service.routers.portfolio import PlanIn

    assert PlanIn.model_validate_json('{"budget": 0.1}').budget == Decimal("0.1")  # by its shortest form
    assert PlanIn.model_validate_json(f'{{"budget": "{LONG}"}}').budget == Decimal(LONG)
    assert PlanIn.model_validate(json.loads('{"budget": 40}')).budget == Decimal(40)
    assert PlanIn.model_validate_json('{"budget": 1e-20}').budget == 0  # a number: to 18 decimals
