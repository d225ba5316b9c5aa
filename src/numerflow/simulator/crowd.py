"""The crowd: simulated participants who submit every round, so percentiles, ranks, reputation and the
leaderboards are computed against a field, and the meta model is the crowd's real consensus.

``crowd=N`` (an engine setting, kept in the state) adds N accounts ``crowd_001``.. each with one Classic
model of the same name. Member ``j`` has a seeded skill: its prediction for a row is
``a_j·z(final target) + b_j·z(the world's consensus signal) + noise``, ranked into (0, 1), with
``a_j`` in [0, 0.03] and ``b_j`` in [0.3, 1.0]: at the default signal a member scores a CORR of about
0.015-0.05 (mean 0.03) and the meta model about 0.06. The round's
meta model is the mean of the crowd's ranked predictions, ranked (the crowd carries no stake in the
simulator: its members' stakes are 0, so payouts and the payout factor are untouched; a stake-weighted
meta model would weigh them equally anyway).

At each round's opening the round's files are drawn (not lazily, as without a crowd) and every member's
predictions are stored as an ordinary submission, so the round's close scores them with everyone else's.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select

from numerflow.data.synthetic import _rank01, _z
from numerflow.fileio import atomic_path, atomic_write_bytes, sha256_file
from numerflow.simulator import state as db
from numerflow.simulator.common import CLASSIC, NAMESPACE, PAYOUT_TARGET, SimEngineBase

log = logging.getLogger(__name__)
CROWD_FILE = "crowd.parquet"  # in the round's hidden folder: one column per member


def crowd_name(j: int) -> str:
    return f"crowd_{j + 1:03d}"


def crowd_predictions(
    seed: int, number: int, n_members: int, target: np.ndarray, consensus: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(n × members predictions in (0, 1), the meta model = their mean rank, ranked) for one round."""
    n = len(target)
    zt, zc = _z(target), _z(consensus)
    preds = np.empty((n, n_members), dtype=np.float64)
    for j in range(n_members):
        skill = np.random.default_rng([seed, 53, j])
        a, b = skill.uniform(0.0, 0.03), skill.uniform(0.3, 1.0)
        noise = np.random.default_rng([seed, 59, number, j]).standard_normal(n)
        preds[:, j] = _rank01(a * zt + b * zc + noise)
    meta = _rank01(preds.mean(axis=1)).astype(np.float64)
    return preds, meta


class SimCrowd(SimEngineBase):
    """Crowd accounts, their round predictions and submissions."""

    crowd: int

    def _ensure_crowd(self) -> list[dict[str, Any]]:
        """The crowd's models, creating the accounts on first use (idempotent)."""
        now = self.clock.now()
        with self._db.begin() as conn:
            for j in range(self.crowd):
                name = crowd_name(j)
                if conn.execute(select(db.models.c.id).where(db.models.c.name == name)).first() is not None:
                    continue
                account_id = str(uuid.uuid5(NAMESPACE, f"account:{name}"))
                conn.execute(
                    insert(db.accounts).values(
                        id=account_id,
                        username=name,
                        public_id=f"CROWD{j + 1:04d}",
                        secret_sha256="!",  # no key hashes to this: nobody can log in as the crowd
                        email=f"{name}@crowd.sim.numer.ai",
                        available_nmr="0",
                        inserted_at=now,
                    )
                )
                conn.execute(
                    insert(db.models).values(
                        id=str(uuid.uuid5(NAMESPACE, f"model:{name}")),
                        account_id=account_id,
                        name=name,
                        tournament=CLASSIC,
                        stake="0",
                        inserted_at=now,
                    )
                )
            names = [crowd_name(j) for j in range(self.crowd)]
            rows = conn.execute(select(db.models).where(db.models.c.name.in_(names))).mappings().all()
        return sorted((dict(r) for r in rows), key=lambda m: m["name"])

    def _crowd_hidden(self, frame: pd.DataFrame, consensus: np.ndarray, number: int) -> np.ndarray:
        """Write the crowd's predictions for a round's live frame; returns the meta model (their mean)."""
        target = frame[PAYOUT_TARGET].to_numpy(dtype=np.float64)
        preds, meta = crowd_predictions(self.seed, number, self.crowd, target, consensus)
        table = pd.DataFrame(preds, index=frame.index, columns=[crowd_name(j) for j in range(self.crowd)])
        with atomic_path(self.state_dir / "rounds" / str(number) / "hidden" / CROWD_FILE) as tmp:
            table.astype(np.float32).to_parquet(tmp)
        return meta

    def _on_round_open(self, number: int, when: float) -> None:
        """With a crowd: draw the round's files now and submit every member's predictions."""
        if self.crowd <= 0:
            return
        members = self._ensure_crowd()
        folder = self._round_files(number)  # type: ignore[attr-defined]
        if not (folder / "hidden" / CROWD_FILE).is_file():  # drawn before the crowd was asked for
            log.info("round %d: its files were drawn without a crowd; no crowd submissions", number)
            return
        preds = pd.read_parquet(folder / "hidden" / CROWD_FILE)
        rows_up, rows_sub = [], []
        for m in members:
            if m["name"] not in preds.columns:
                continue
            tag = uuid.uuid5(NAMESPACE, f"crowd:{number}:{m['name']}").hex
            key = f"submission/{m['id']}/{tag}/crowd.csv"
            path = self.state_dir / "uploads" / key
            body = pd.DataFrame({"id": preds.index, "prediction": preds[m["name"]].to_numpy()})
            atomic_write_bytes(path, body.to_csv(index=False).encode())
            rows_up.append(
                {
                    "key": key,
                    "account_id": m["account_id"],
                    "model_id": m["id"],
                    "kind": "submission",
                    "filename": "crowd.csv",
                    "issued_at": when,
                    "stored_at": when,
                    "size": path.stat().st_size,
                    "sha256": sha256_file(path),
                }
            )
            rows_sub.append(
                {
                    "id": str(uuid.uuid5(NAMESPACE, f"crowd-submission:{number}:{m['name']}")),
                    "model_id": m["id"],
                    "round_number": number,
                    "tournament": CLASSIC,
                    "key": key,
                    "filename": "crowd.csv",
                    "inserted_at": when,
                    "sha256": rows_up[-1]["sha256"],
                    "n_rows": len(body),
                    "source": "crowd",
                    "trigger_id": None,
                }
            )
        if rows_sub:
            with self._db.begin() as conn:
                conn.execute(insert(db.uploads), rows_up)
                conn.execute(insert(db.submissions), rows_sub)
        log.info("round %d: %d crowd submissions", number, len(rows_sub))
