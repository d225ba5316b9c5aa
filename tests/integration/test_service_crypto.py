"""The service plays Numerai Crypto every round, over its REST API, against the simulator, on SQLite and
PostgreSQL: a ``signals_data`` job downloads Numerai's Crypto files, a ``train`` job trains a
``[signals_models]`` model with ``tournament = "crypto"`` on the user's own (synthetic) daily prices, the
round-open webhook's round job submits it once, and after the simulator resolves the round a ``perf_sync``
job brings in its MMC, which /api/performance and /api/rounds show under the Crypto tournament."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from service_support import make_settings, service_simulator, start_service, stop_service
from signals_service_support import (
    HOOK_SECRET,
    run_job,
    webhook_round,
)

from numerflow.config import SignalsModelSpec
from numerflow.data.prices_synthetic import CRYPTO_PRICE_COLUMNS, write_synthetic_crypto_prices

CRYPTO_SLOT = "sim_crypto"
CRYPTO_FILES = ["train_targets.parquet", "live_universe.parquet"]


def _outcomes(round_job: dict) -> list[tuple[int, str, str]]:  # type: ignore[type-arg]
    return sorted((o["tournament"], o["numerai_model"], o["status"]) for o in round_job["result"]["outcomes"])


def test_crypto_model_trained_submitted_and_scored_by_the_service(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    account = {"models": [{"name": CRYPTO_SLOT, "tournament": 12, "stake": 5}]}
    with service_simulator(tmp_path, settings, auto_rounds=False, default_account=account) as sim:
        settings.service.webhook_secret = SecretStr(HOOK_SECRET)
        prices = tmp_path / "my_prices" / "crypto.csv"
        settings.signals_models["cry"] = SignalsModelSpec(
            tournament="crypto",
            algorithm="ridge",
            params={"alpha": 10.0},
            prices=prices,
            price_columns=CRYPTO_PRICE_COLUMNS,
            numerai_model=CRYPTO_SLOT,
        )
        svc = start_service(settings)
        try:
            c, op = svc.client, svc.auth("operate")
            data = run_job(c, op, "signals_data", crypto=True, files=CRYPTO_FILES)
            assert data["result"]["version"] == "crypto/v2.0", data
            targets = settings.data_dir / "crypto" / "v2.0" / "train_targets.parquet"
            prices.parent.mkdir()
            write_synthetic_crypto_prices(targets, prices)
            run_job(c, op, "train", model="cry")
            promote = c.post("/api/models/cry/promote", headers=op, json={"version": 1})
            assert promote.status_code == 200 and promote.json()["stage"] == "champion", promote.text

            # the round-open webhook: the Crypto model submitted once; a second run submits nothing
            number = sim.engine.current_round()["number"]
            first, _ = webhook_round(c, op)
            assert first["result"]["round_number"] == number
            assert _outcomes(first) == [(12, CRYPTO_SLOT, "confirmed")]
            again, _ = webhook_round(c, op)
            assert _outcomes(again) == [(12, CRYPTO_SLOT, "already")]
            uploads = [
                (s["tournament"], s["model_name"], s["round_number"]) for s in sim.engine.all_submissions()
            ]
            assert uploads == [(12, CRYPTO_SLOT, number)]

            # the REST API says which tournament the round and its submission belong to
            rounds = c.get("/api/rounds", headers=op, params={"tournament": "crypto"}).json()
            assert [(r["tournament"], r["number"], r["submissions"]) for r in rounds] == [
                (12, number, {"confirmed": 1})
            ]
            rnd = c.get(f"/api/rounds/{number}", headers=op, params={"tournament": "crypto"}).json()
            assert rnd["tournament"] == 12 and rnd["submissions"] == {"confirmed": 1}
            [sub] = rnd["submission_list"]
            assert (sub["tournament"], sub["numerai_model"], sub["model_name"]) == (12, CRYPTO_SLOT, "cry")
            assert c.get("/api/rounds", headers=op, params={"tournament": "signals"}).json() == []
            r = c.get(f"/api/rounds/{number}", headers=op, params={"tournament": "signals"})
            assert r.status_code == 404 and f"no signals round {number}" in r.json()["detail"]

            # the round resolves; a perf_sync job brings in its MMC (and CORR), under Crypto
            sim.engine.resolve_all()
            sync = run_job(c, op, "perf_sync")
            assert sync["result"]["scores"] > 0
            perf = c.get(f"/api/performance/{CRYPTO_SLOT}", headers=op).json()
            row = next(p for p in perf if p["round"] == number)
            assert row["tournament"] == 12 and row["mmc"] is not None and row["corr"] is not None
            assert row["alpha"] is None and row["mpc"] is None and row["bmc"] is None
            payouts = c.get("/api/payouts", headers=op, params={"tournament": "crypto"}).json()
            assert [(p["tournament"], p["numerai_model"], p["round_number"]) for p in payouts] == [
                (12, CRYPTO_SLOT, number)
            ]
        finally:
            stop_service(svc)
