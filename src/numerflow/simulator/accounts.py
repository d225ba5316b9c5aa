"""The simulator's accounts and models: seeding from defaults or an accounts file, authentication by
``Token PUBLIC_ID$SECRET_KEY``, and lookups. :class:`~numerflow.simulator.engine.TournamentEngine` holds
one :class:`SimAccounts` and forwards its public methods to it."""

from __future__ import annotations

import json
import tomllib
import uuid
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from numerflow.errors import ApiAuthError, ApiError, ConfigError, NotFoundError
from numerflow.simulator import state as db
from numerflow.simulator.common import (
    CLASSIC,
    DEFAULT_AVAILABLE_NMR,
    DEFAULT_MODELS,
    DEFAULT_PUBLIC_ID,
    DEFAULT_SECRET_KEY,
    DEFAULT_STAKE,
    DEFAULT_USERNAME,
    NAMESPACE,
    SimPart,
    dec,
    money,
    sha,
)


class SimAccounts(SimPart):
    """Accounts and their models in the simulator's state database."""

    def seed(self, conn: Connection, accounts_file: Path | str | None, default: dict[str, Any]) -> None:
        """Insert the default account (on a fresh state) and those of ``accounts_file``; existing usernames
        are kept as they are."""
        specs: list[dict[str, Any]] = []
        if conn.execute(select(func.count()).select_from(db.accounts)).scalar_one() == 0:
            stake = default.get("stake", DEFAULT_STAKE)
            names = list(default.get("models") or DEFAULT_MODELS)
            spec = {
                "username": default.get("username") or DEFAULT_USERNAME,
                "public_id": default.get("public_id") or DEFAULT_PUBLIC_ID,
                "secret_key": default.get("secret_key") or DEFAULT_SECRET_KEY,
                "available_nmr": default.get("available_nmr", DEFAULT_AVAILABLE_NMR),
                # a name (a Classic model at ``stake``) or a spec as in the accounts file (name, tournament)
                "models": [
                    {"tournament": CLASSIC, "stake": stake, **m}
                    if isinstance(m, dict)
                    else {"name": m, "tournament": CLASSIC, "stake": stake}
                    for m in names
                ],
            }
            validate_accounts([spec], "default account")
            specs.append(spec)
        if accounts_file is not None:
            specs.extend(load_accounts_file(Path(accounts_file)))
        now = self.clock.now()
        for spec in specs:
            existing = conn.execute(
                select(db.accounts.c.id).where(db.accounts.c.username == spec["username"])
            ).first()
            if existing is not None:
                continue
            account_id = str(uuid.uuid5(NAMESPACE, f"account:{spec['username']}"))
            conn.execute(
                insert(db.accounts).values(
                    id=account_id,
                    username=spec["username"],
                    public_id=spec["public_id"],
                    secret_sha256=sha(spec["secret_key"]),
                    email=spec.get("email", f"{spec['username']}@sim.numer.ai"),
                    available_nmr=money(dec(spec.get("available_nmr", DEFAULT_AVAILABLE_NMR))),
                    inserted_at=now,
                )
            )
            for m in spec.get("models", []):
                taken = conn.execute(select(db.models.c.id).where(db.models.c.name == m["name"])).first()
                if taken is not None:
                    raise ConfigError(
                        f"account {spec['username']}: model name '{m['name']}' is taken by another account"
                    )
                conn.execute(
                    insert(db.models).values(
                        id=str(uuid.uuid5(NAMESPACE, f"model:{m['name']}")),
                        account_id=account_id,
                        name=m["name"],
                        tournament=int(m.get("tournament", CLASSIC)),
                        stake=money(dec(m.get("stake", "0"))),
                        inserted_at=now,
                    )
                )

    def authenticate(self, header: str | None) -> dict[str, Any]:
        """The account for an ``Authorization: Token PUBLIC_ID$SECRET_KEY`` header, or ApiAuthError."""
        if not header:
            raise ApiAuthError(
                "You must be authenticated to perform this action: "
                "send 'Authorization: Token PUBLIC_ID$SECRET_KEY'"
            )
        scheme, _, token = header.partition(" ")
        public_id, sep, secret = token.strip().partition("$")
        if scheme.lower() != "token" or not sep:
            raise ApiAuthError("Invalid Authorization header: expected 'Token PUBLIC_ID$SECRET_KEY'")
        with self._lock, self._db.connect() as conn:
            row = (
                conn.execute(select(db.accounts).where(db.accounts.c.public_id == public_id))
                .mappings()
                .first()
            )
        if row is None or row["secret_sha256"] != sha(secret):
            raise ApiAuthError("Invalid API key: the public id or secret key is wrong")
        return dict(row)

    def by_username(self, username: str) -> dict[str, Any] | None:
        q = select(db.accounts).where(func.lower(db.accounts.c.username) == username.lower())
        with self._lock, self._db.connect() as conn:
            row = conn.execute(q).mappings().first()
        return None if row is None else dict(row)

    def get(self, account_id: str) -> dict[str, Any]:
        with self._lock, self._db.connect() as conn:
            return dict(
                conn.execute(select(db.accounts).where(db.accounts.c.id == account_id)).mappings().one()
            )

    def models_of(self, account_id: str, tournament: int | None = None) -> list[dict[str, Any]]:
        q = select(db.models).where(db.models.c.account_id == account_id).order_by(db.models.c.name)
        if tournament is not None:
            q = q.where(db.models.c.tournament == tournament)
        with self._lock, self._db.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def model(self, model_id: str | None, account_id: str | None = None) -> dict[str, Any]:
        """A model by id (optionally required to belong to ``account_id``).

        Without an id, an account's only model is meant (Numerai needs the id only with several models)."""
        if not model_id:
            only = self.models_of(account_id) if account_id else []
            if len(only) == 1:
                return only[0]
            raise ApiError("modelId is required: pass the id of one of your models (see get_models())")
        with self._lock, self._db.connect() as conn:
            row = conn.execute(select(db.models).where(db.models.c.id == str(model_id))).mappings().first()
        if row is None or (account_id is not None and row["account_id"] != account_id):
            raise NotFoundError(f"Model {model_id} not found for this account")
        return dict(row)

    def model_by_name(self, name: str | None, tournament: int | None = None) -> dict[str, Any] | None:
        if not name:
            return None
        q = select(db.models).where(func.lower(db.models.c.name) == name.lower())
        if tournament is not None:
            q = q.where(db.models.c.tournament == tournament)
        with self._lock, self._db.connect() as conn:
            row = conn.execute(q).mappings().first()
        return None if row is None else dict(row)


def load_accounts_file(path: Path) -> list[dict[str, Any]]:
    """Accounts to seed, from TOML or JSON: ``[[accounts]]`` with username, public_id, secret_key,
    available_nmr and ``[[accounts.models]]`` (name, tournament, stake)."""
    if not path.is_file():
        raise ConfigError(f"{path}: accounts file not found")
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse accounts file ({exc})") from None
    accounts = raw.get("accounts") if isinstance(raw, dict) else None
    if not isinstance(accounts, list):
        raise ConfigError(f"{path}: expected a list 'accounts' ([[accounts]] tables in TOML)")
    validate_accounts(accounts, str(path))
    return accounts


def validate_accounts(accounts: list[Any], where: str) -> None:
    """ConfigError naming the first bad field of a list of account specs."""
    path = where
    seen: set[str] = set()
    for i, acct in enumerate(accounts):
        for key in ("username", "public_id", "secret_key"):
            if not isinstance(acct, dict) or not isinstance(acct.get(key), str) or not acct.get(key):
                raise ConfigError(f"{path}: accounts[{i}].{key} is missing or not a string")
        if "$" in acct["public_id"]:
            raise ConfigError(f"{path}: accounts[{i}].public_id must not contain '$'")
        for j, m in enumerate(acct.get("models", [])):
            if not isinstance(m, dict) or not isinstance(m.get("name"), str):
                raise ConfigError(f"{path}: accounts[{i}].models[{j}].name is missing or not a string")
            if m["name"] in seen:
                raise ConfigError(
                    f"{path}: accounts[{i}].models[{j}]: model name '{m['name']}' is used twice"
                )
            seen.add(m["name"])
            if str(m.get("tournament", CLASSIC)) not in ("8", "11", "12"):
                raise ConfigError(f"{path}: accounts[{i}].models[{j}].tournament must be 8, 11 or 12")
            try:
                dec(m.get("stake", "0"))
            except InvalidOperation:
                raise ConfigError(f"{path}: accounts[{i}].models[{j}].stake is not a number") from None
        try:
            dec(acct.get("available_nmr", "0"))
        except InvalidOperation:
            raise ConfigError(f"{path}: accounts[{i}].available_nmr is not a number") from None
