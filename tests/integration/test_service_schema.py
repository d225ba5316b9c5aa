"""Schemathesis against the OpenAPI document: generated requests, valid and invalid, never get a 500,
and responses match the documented schemas and status codes. Real app, SQLite and PostgreSQL.

(schemathesis's own pytest plugin does not run under this pytest, so the operations are driven through
hypothesis directly: one small property test per operation and generation mode.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from service_support import Service, make_settings, start_service, stop_service

from numerflow.config import ModelSpec
from numerflow.store import session_scope
from numerflow.store.tables.modeling import ModelVersion
from numerflow.store.tables.tournament import Payout, Round, Score, StakeChange, Submission

MAX_EXAMPLES = 5


@pytest.fixture
def svc(tmp_path: Path, db_url: str) -> Iterator[Service]:
    settings = make_settings(tmp_path, db_url)
    settings.models["ridge"] = ModelSpec(algorithm="ridge", numerai_model="slot_a", challenger_model="slot_b")
    service = start_service(settings, background=False)
    _history(service)
    yield service
    stop_service(service)


def _history(svc: Service) -> None:
    """A little of everything the read endpoints return, so their answers are checked with content."""
    now = datetime.now(UTC)
    with session_scope(svc.engine) as s:
        for number in (10, 11, 12):
            s.add(Round(number=number, status="open" if number == 12 else "complete", first_seen_at=now))
            for slot in ("slot_a", "slot_b"):
                s.add(
                    Submission(
                        round_number=number, numerai_model=slot, model_name="ridge", status="confirmed"
                    )
                )
                s.add(
                    Payout(
                        numerai_model=slot,
                        round_number=number,
                        at_risk_nmr=1.0,
                        payout_nmr=0.01,
                        status="pending",
                    )
                )
                for day, metric in ((3, "canon_corr"), (3, "canon_mmc"), (5, "canon_corr"), (5, "canon_fnc")):
                    s.add(
                        Score(
                            numerai_model=slot, round_number=number, day=day, metric=metric, value=0.01 * day
                        )
                    )
        s.add(
            StakeChange(numerai_model="slot_a", from_nmr=1.0, to_nmr=2.0, delta_nmr=1.0, status="requested")
        )
        s.add(
            ModelVersion(
                name="ridge", version=1, kind="model", algorithm="ridge", path="", manifest_sha256="0" * 64,
                data_version="v5.3", targets=["target"], n_features=3, params={}, scores={"corr_mean": 0.01},
                fingerprint="f" * 64, stage="champion",
            )
        )  # fmt: skip


def _fuzz(op: schemathesis.APIOperation, mode: GenerationMode, headers: dict[str, str]) -> None:
    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        assert response.status_code < 500, f"{response.status_code} {response.text[:300]}"
        if mode is GenerationMode.POSITIVE:
            case.validate_response(response, headers=headers)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
        assert mode is GenerationMode.NEGATIVE


def test_api_conforms_and_never_errors(svc: Service) -> None:
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", svc.app, headers=svc.auth("read"))
    # calls use an operate token: every route but the admin ones is exercised past authentication, and
    # no generated DELETE /api/tokens/{id} can revoke the token the calls use (it needs admin)
    headers = svc.auth("operate")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    overview = svc.client.get("/api/overview", headers=headers).json()
    assert {m["numerai_model"] for m in overview["models"]} == {"slot_a", "slot_b"}  # content to check
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(op, mode, headers)
            except Exception as exc:  # collect every failing operation, then fail once
                failures.append(f"{op.label} [{mode.value}]: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
