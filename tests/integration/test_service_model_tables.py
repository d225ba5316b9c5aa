"""Every configured model, of ``[models]`` and ``[signals_models]`` alike, is a configured model of the
service: ``/api/models`` lists it with its tournament, ``/api/models/{name}`` gives its spec, the overview
maps its slots to it, and the Jobs page offers its name (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
        record_model_version(service.engine, "sig", version)
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
