"""The GraphQL side: Numerai's schema (``schema.graphql``) executed with graphql-core over the engine.

Answers look like Numerai's: ``{"data": {...}}`` on success, ``{"errors": [{"message": ...}], "data": null}``
on failure (always HTTP 200). Private fields need ``Authorization: Token PUBLIC_ID$SECRET_KEY``.

numerapi declares ``releaseStake``'s variable as ``$drain: bool!``, which is no GraphQL type; Numerai's
server accepts it, so before validation we map variable types that name no type of the schema onto the
schema type with the same name in another case or its Python name (``bool`` -> ``Boolean``,
``int`` -> ``Int``, ``str`` -> ``String``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    NamedTypeNode,
    NameNode,
    OperationDefinitionNode,
    Visitor,
    build_schema,
    execute,
    parse,
    validate,
    visit,
)

from numerflow.errors import ApiError, NotFoundError, NumerflowError
from numerflow.simulator.common import CLASSIC, CRYPTO, N_SCORE_DAYS, NOT_OPEN, SIGNALS, dec
from numerflow.simulator.engine import TournamentEngine
from numerflow.simulator.profiles import compute_choices

log = logging.getLogger(__name__)

# fields that need an API key; everything else is public, as on Numerai
PRIVATE_FIELDS = frozenset(
    {
        "account",
        "model",
        "submission_upload_auth",
        "submissionUploadSignalsAuth",
        "diagnosticsUploadAuth",
        "diagnostics",
        "submissions",
        "pendingModelPayouts",
        "create_submission",
        "createSignalsSubmission",
        "createDiagnostics",
        "v2ChangeStake",
        "releaseStake",
        "submissionDownloadAuth",
        "setUserBio",
        "setUserLink",
        "setSubmissionWebhook",
        "computePickleUploadAuth",
        "computePickleDataVersions",
        "computePickleDockerImages",
        "createComputePickleUpload",
        "v3StakeConfig",
        "v3StakeRound",
        "v3StakeAuth",
        "v3StakeClaim",
    }
)
NO_CHAIN = (
    "staking v3 (on-chain) is not simulated: the simulator has no chain, signatures or claims; "
    "stake with stake_increase / stake_set / stake_drain"
)


@cache
def schema() -> GraphQLSchema:
    return build_schema((Path(__file__).parent / "schema.graphql").read_text(encoding="utf-8"))


@dataclass
class Context:
    engine: TournamentEngine
    authorization: str | None
    base_url: str
    _account: dict[str, Any] | None = field(default=None, repr=False)

    def account(self) -> dict[str, Any]:
        if self._account is None:
            self._account = self.engine.authenticate(self.authorization)
        return self._account


def _fix_variable_types(doc: DocumentNode, sch: GraphQLSchema) -> DocumentNode:
    by_lower = {name.lower(): name for name in sch.type_map}
    by_lower.update({"bool": "Boolean", "integer": "Int", "str": "String"})

    class Fix(Visitor):
        def enter_named_type(self, node: NamedTypeNode, *_args: Any) -> Any:
            if node.name.value in sch.type_map:
                return None
            fixed = by_lower.get(node.name.value.lower())
            return None if fixed is None else NamedTypeNode(name=NameNode(value=fixed), loc=node.loc)

    return visit(doc, Fix())


def top_level_fields(doc: DocumentNode) -> list[str]:
    names: list[str] = []
    for definition in doc.definitions:
        if isinstance(definition, OperationDefinitionNode):
            names += [sel.name.value for sel in definition.selection_set.selections if hasattr(sel, "name")]
    return names


@lru_cache(maxsize=512)
def _checked(query: str) -> tuple[DocumentNode | None, list[str], list[str]]:
    """(document, top-level fields, validation messages) of a query text. Clients send the same few
    texts over and over (numerapi's are constants), so parsing and validating happen once per text."""
    sch = schema()
    try:
        doc = parse(query)
    except GraphQLError as exc:
        return None, [], [exc.message]
    doc = _fix_variable_types(doc, sch)
    return doc, top_level_fields(doc), [p.message for p in validate(sch, doc)]


def run_query(
    engine: TournamentEngine,
    query: str,
    variables: dict[str, Any] | None,
    *,
    authorization: str | None,
    base_url: str,
) -> tuple[dict[str, Any], list[str]]:
    """Execute one GraphQL request; returns (response body, top-level field names of the operation)."""
    sch = schema()
    doc, fields, problems = _checked(query)
    if doc is None or problems:
        return {"errors": [{"message": p} for p in problems], "data": None}, fields
    ctx = Context(engine=engine, authorization=authorization, base_url=base_url)
    if PRIVATE_FIELDS.intersection(fields):
        try:
            ctx.account()
        except NumerflowError as exc:
            return {"errors": [{"message": exc.message}], "data": None}, fields
    result = execute(
        sch,
        doc,
        root_value=Root(),
        context_value=ctx,
        variable_values=variables or {},
        field_resolver=_resolve,
    )
    assert isinstance(result, ExecutionResult)
    if result.errors:
        return {"errors": [_error(e) for e in result.errors], "data": None}, fields
    return {"data": result.data}, fields


def _resolve(obj: Any, info: Any, /, **args: Any) -> Any:
    """Field resolver: a dict key or attribute, called with the arguments when callable.

    (graphql-core's default takes ``source`` as a keyword, which clashes with create_submission's
    ``source`` argument.)"""
    name = info.field_name
    value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return value(info, **args) if callable(value) else value


def _error(err: GraphQLError) -> dict[str, Any]:
    original = err.original_error
    if original is None or isinstance(original, NumerflowError | GraphQLError):
        out: dict[str, Any] = {"message": err.message}
        if err.path:
            out["path"] = list(err.path)
        return out
    log.error("simulator bug while answering %s", err.path, exc_info=original)
    return {"message": f"Internal server error ({type(original).__name__})", "path": list(err.path or [])}


def _guard(info: Any) -> dict[str, Any]:
    return info.context.account()


# ---------------------------------------------------------------------- shapes
def _round(engine: TournamentEngine, r: dict[str, Any], tournament: int | None = None) -> dict[str, Any]:
    r = engine.tournament_round(r, tournament)  # Signals: its own 60 scoring days and resolution
    cfg = r["config"]
    shown = engine.shown
    configs = []
    scores: tuple[tuple[str, float, bool, int], ...] = (
        ("canon_corr", cfg["w_corr"], True, N_SCORE_DAYS),
        ("canon_mmc", cfg["w_mmc"], True, N_SCORE_DAYS),
        ("canon_bmc", 0.0, False, N_SCORE_DAYS),
        ("canon_fnc", 0.0, False, N_SCORE_DAYS),
    )
    universe, factor = "classic", r["payout_factor"]
    if tournament in (SIGNALS, CRYPTO):  # their own payout rule, target and payout factor (signals.py)
        cfg, scores, factor = engine.tournament_round_terms(r, tournament)
        universe = "signals" if tournament == SIGNALS else "crypto"
    for name, mult, payout, days in scores:
        configs.append(
            {
                "id": f"{r['number']}-{name}",
                "scoreConfigId": name,
                "roundNumberStart": r["number"],
                "roundNumberEnd": r["number"],
                "name": name,
                "version": "v5",
                "displayName": name,
                "totalScoreDays": days,
                "returnsLagDays": 2,
                "dataDelayDays": 2,
                "universe": universe,
                "isCanonScore": True,
                "isPayout": payout,
                "scoringStart": shown(r["score_times"][0]),
                "scoringEnd": shown(r["score_times"][days - 1]),
                "minMultiplier": mult,
                "maxMultiplier": mult,
                "defaultMultiplier": mult,
                "clipThreshold": cfg["clip"],
                "stakeThreshold": cfg["stake_threshold"],
                "payoutFactor": float(factor) if factor else None,
            }
        )
    return {
        "id": r["id"],
        "tournament": tournament if tournament in (SIGNALS, CRYPTO) else r["tournament"],
        "number": r["number"],
        "target": cfg["target"],
        "openTime": shown(r["open_time"]),
        "closeTime": shown(r["close_time"]),
        "closeStakingTime": shown(r["close_time"]),
        "scoreTime": shown(r["score_times"][0]),
        "resolveTime": shown(r["resolve_time"]),
        "resolvedGeneral": bool(r["resolved"]),
        "resolvedStaking": bool(r["resolved"]),
        "payoutFactor": factor,
        "stakeThreshold": str(cfg["stake_threshold"]),
        "dataDatestamp": int((shown(r["open_time"]) or "")[:10].replace("-", "")),
        "status": r["status"],
        "roundScoreConfigs": configs,
    }


def _submission(engine: TournamentEngine, s: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": s["id"],
        "filename": s["filename"],
        "insertedAt": engine.shown(s["inserted_at"]),
        "selected": s.get("selected", True),
        "roundNumber": s["round_number"],
        "round": {"tournament": s["tournament"], "number": s["round_number"]},
        "tournament": s["tournament"],
    }


def _model(engine: TournamentEngine, m: dict[str, Any], account_id: str) -> dict[str, Any]:
    def submissions(_info: Any) -> list[dict[str, Any]]:
        return [_submission(engine, s) for s in engine.submissions(m["id"], account_id)]

    def latest(_info: Any) -> list[dict[str, Any]]:
        out = []
        for s in engine.submissions(m["id"], account_id):
            if not s["selected"]:
                continue
            r = engine.round(s["round_number"])
            assert r is not None
            out.append(
                {
                    "roundNumber": r["number"],
                    "roundOpen": engine.shown(r["open_time"]),
                    "roundClose": engine.shown(r["close_time"]),
                    "roundCloseStaking": engine.shown(r["close_time"]),
                    "filename": s["filename"],
                    "status": "scored" if r["closed"] else "accepted",
                    "timestamp": engine.shown(s["inserted_at"]),
                }
            )
        return out[::-1]

    stake = dec(m["stake"])
    return {
        "id": m["id"],
        "name": m["name"],
        "displayName": m["name"],
        "username": m["name"],
        "tournament": m["tournament"],
        "stakeValue": m["stake"] if stake > 0 else None,
        "submissions": submissions,
        "latestSubmissions": latest,
        "v2Stake": {"status": "confirmed" if stake > 0 else None, "txHash": None, "value": m["stake"]},
        "computePickleUpload": lambda _info: _compute_pickle(engine, m["id"]),
    }


def _compute_pickle(engine: TournamentEngine, model_id: str) -> dict[str, Any] | None:
    """The model's active pickle and its runs (owner only: models are reached through the account)."""
    found = engine.compute_pickle(model_id)
    if found is None:
        return None
    up, runs = found["upload"], found["runs"]

    def trigger(r: dict[str, Any]) -> dict[str, Any]:
        at = engine.shown(r["started_at"])
        final = "succeeded" if r["status"] == "success" else "failed"
        return {
            "id": r["id"],
            "roundNumber": r["round_number"],
            "status": final,
            "submissionId": r["submission_id"],
            "log": r["log"],
            "statuses": [
                {"status": "pending", "description": None, "insertedAt": at},
                {"status": "running", "description": None, "insertedAt": at},
                {"status": final, "description": r["description"], "insertedAt": at},
            ],
        }

    return {
        "id": up["id"],
        "filename": up["filename"],
        "dataVersion": up["data_version"],
        "dockerImage": up["docker_image"],
        "insertedAt": engine.shown(up["inserted_at"]),
        "validationStatus": "valid" if not runs or runs[0]["status"] == "success" else "invalid",
        "triggerStatus": None if not runs else ("succeeded" if runs[0]["status"] == "success" else "failed"),
        "triggers": [trigger(r) for r in runs],
    }


def _calls(
    method: str, *names: str, account: bool = False, then: Callable[[Any], Any] | None = None
) -> Callable[..., Any]:
    """A resolver that hands the field's arguments ``names`` (in this order; None when not given) to
    ``engine.<method>``, after the caller's account when ``account``; ``then`` shapes the answer."""

    def resolver(_root: Any, info: Any, **args: Any) -> Any:
        ctx: Context = info.context
        first = (ctx.account(),) if account else ()
        answer = getattr(ctx.engine, method)(*first, *(args.get(n) for n in names))
        return answer if then is None else then(answer)

    return resolver


def _as_id(created_id: str) -> dict[str, str]:
    return {"id": created_id}


def _upload_auth(kind: str) -> Callable[..., dict[str, str]]:
    """The resolver of an upload-auth field: a presigned PUT URL for ``kind`` (submission, signals, ...)."""

    def resolver(
        _root: Any, info: Any, filename: str, modelId: str | None = None, **_: Any
    ) -> dict[str, str]:
        ctx: Context = info.context
        auth = ctx.engine.upload_auth(ctx.account(), filename, modelId, kind)
        return {"filename": auth["filename"], "url": ctx.base_url + auth["url_path"]}

    return resolver


class Root:
    """Resolvers of Query and Mutation; graphql-core calls ``root.<field>(info, **args)``."""

    # ---------------------------------------------------------------- public
    listDatasets = _calls("list_datasets", "round", "tournament")

    def dataset(
        self, info: Any, filename: str, round: int | None = None, tournament: int | None = None
    ) -> str:
        ctx: Context = info.context
        _, url_path = ctx.engine.dataset_path(filename, round)
        return ctx.base_url + url_path

    def rounds(
        self,
        info: Any,
        tournament: int | None = None,
        number: int | None = None,
        target: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        engine: TournamentEngine = info.context.engine
        if number == 0:
            current = engine.current_round()
            if current is None:
                raise NotFoundError(NOT_OPEN)
            return [_round(engine, current, tournament)]
        rows = [engine.tournament_round(r, tournament) for r in engine.rounds()]  # Signals: its own status
        if number is not None:
            rows = [r for r in rows if r["number"] == number]
        if status is not None:
            rows = [r for r in rows if r["status"] == status]
        if target is not None:
            rows = [r for r in rows if r["config"]["target"] == target]
        if limit is not None:
            rows = rows[: max(0, limit)]
        return [_round(engine, r, tournament) for r in rows]

    def accountProfile(self, info: Any, username: str, tournament: int | None = None) -> dict[str, Any]:
        engine: TournamentEngine = info.context.engine
        acct = engine.account_by_username(username)
        if acct is None:
            raise NotFoundError(f"No account named {username}")
        models = engine.models_of(acct["id"], tournament)
        return {"username": acct["username"], "models": [_model(engine, m, acct["id"]) for m in models]}

    def submissionScores(
        self,
        info: Any,
        modelId: str,
        displayName: str | None = None,
        version: str | None = None,
        day: int | None = None,
        resolved: bool | None = None,
        tournament: int | None = None,
        lastNRounds: int | None = None,
        distinctOnRound: bool | None = None,
    ) -> list[dict[str, Any]]:
        engine: TournamentEngine = info.context.engine
        engine.model(modelId)
        if version is not None and version.lower() != "v5":
            return []
        rows = engine.submission_scores(
            modelId,
            display_name=displayName,
            day=day,
            resolved=resolved,
            last_n_rounds=lastNRounds,
            distinct_on_round=distinctOnRound,
        )
        out = []
        for r in rows:
            times = json.loads(r["score_times"])
            out.append(
                {
                    "roundId": r["round_id"],
                    "submissionId": r["submission_id"],
                    "roundNumber": r["round_number"],
                    "roundResolveTime": engine.shown(r["resolve_time"]),
                    "roundScoreTime": engine.shown(times[0]),
                    "roundCloseStakingTime": engine.shown(r["close_time"]),
                    "value": r["value"],
                    "percentile": r["percentile"],
                    "displayName": r["display_name"],
                    "version": "v5",
                    "date": engine.shown(r["score_time"]),
                    "day": r["day"],
                    "resolveDate": engine.shown(r["resolve_time"]),
                    "resolved": bool(r["resolved"]),
                }
            )
        return out

    def v2RoundModelPerformances(
        self,
        info: Any,
        modelId: str,
        tournament: int | None = None,
    ) -> list[dict[str, Any]]:
        engine: TournamentEngine = info.context.engine
        try:
            modelId = engine.model(modelId)["id"]
        except NotFoundError:
            # numerapi's deprecated round_model_performances(username) passes a model name here
            named = engine.model_by_name(modelId)
            if named is None:
                raise
            modelId = named["id"]
        out = []
        for perf in engine.round_performances(modelId):
            r = perf["round"]
            cfg = r["config"]
            pay = perf["config"]  # the model's tournament's payout rule (Signals: Alpha and MPC)
            out.append(
                {
                    "atRisk": perf["atRisk"],
                    "payoutMultipliers": [
                        {
                            "id": f"{r['number']}-{n}",
                            "scoreConfigId": n,
                            "name": n,
                            "version": "v5",
                            "displayName": n,
                            "multiplier": mult,
                        }
                        for n, mult in zip(perf["weighted"], (pay["w_corr"], pay["w_mmc"]), strict=True)
                    ],
                    "corrMultiplier": pay["w_corr"],
                    "mmcMultiplier": pay["w_mmc"],
                    "roundPayoutFactor": r["payout_factor"],
                    "roundNumber": r["number"],
                    "roundOpenTime": engine.shown(r["open_time"]),
                    "roundResolveTime": engine.shown(r["resolve_time"]),
                    "roundResolved": bool(r["resolved"]),
                    "roundTarget": cfg["target"],
                    "submissionScores": perf["submissionScores"],
                    "intraRoundSubmissionScores": perf["submissionScores"],
                }
            )
        return out

    def v3UserProfile(
        self,
        info: Any,
        modelName: str | None = None,
        model_name: str | None = None,
        tournament: int | None = None,
    ) -> dict[str, Any]:
        engine: TournamentEngine = info.context.engine
        name = modelName or model_name
        if not name:
            raise NotFoundError("v3UserProfile needs modelName (or model_name)")
        m = engine.model_by_name(name, tournament)
        if m is None:
            raise NotFoundError(f"No model named {name}")
        stake = dec(m["stake"])
        return {
            "id": m["id"],
            "username": m["name"],
            "startDate": engine.shown(m["inserted_at"]),
            "bio": engine.profile(m["id"]).get("bio"),
            "nmrStaked": m["stake"],
            "stakeValue": m["stake"] if stake > 0 else None,
            "dailyModelPerformances": lambda _info: engine.reputation(m["id"]),
        }

    def v2SignalsProfile(self, info: Any, modelName: str) -> dict[str, Any]:
        engine: TournamentEngine = info.context.engine
        m = engine.model_by_name(modelName, SIGNALS)
        if m is None:
            raise NotFoundError(f"No Signals model named {modelName}")
        return {
            "id": m["id"],
            "username": m["name"],
            "startDate": engine.shown(m["inserted_at"]),
            "bio": engine.profile(m["id"]).get("bio"),
            "nmrStaked": m["stake"],
            "dailyModelPerformances": lambda _info: engine.signals_daily_performances(m["id"]),
        }

    signalsLeaderboard = _calls("signals_leaderboard", "limit", "offset")
    cryptosignalsLeaderboard = _calls("crypto_leaderboard", "limit", "offset")

    # ---------------------------------------------------------------- private
    def account(self, info: Any) -> dict[str, Any]:
        ctx: Context = info.context
        engine = ctx.engine
        acct = engine.account(ctx.account()["id"])
        models = engine.models_of(acct["id"])

        def txns(_info: Any) -> list[dict[str, Any]]:
            out = []
            for m in models:
                for c in engine.stake_changes(m["id"]):
                    out.append(
                        {
                            "amount": c["amount"],
                            "from": acct["username"] if c["type"] == "increase" else m["name"],
                            "to": m["name"] if c["type"] == "increase" else acct["username"],
                            "status": c["status"],
                            "time": engine.shown(c["requested_at"]),
                            "tournament": m["tournament"],
                            "txHash": None,
                            "type": "stake" if c["type"] == "increase" else "release",
                        }
                    )
            return out

        return {
            "id": acct["id"],
            "username": acct["username"],
            "email": acct["email"],
            "walletAddress": None,
            "availableNmr": acct["available_nmr"],
            "mfaEnabled": False,
            "status": "VERIFIED",
            "insertedAt": engine.shown(acct["inserted_at"]),
            "models": [_model(engine, m, acct["id"]) for m in models],
            "apiTokens": [
                {
                    "name": "sim",
                    "public_id": acct["public_id"],
                    "scopes": ["upload_submission", "stake", "read_user_info"],
                }
            ],
            "walletTxns": txns,
        }

    def model(self, info: Any, modelId: str | None = None) -> dict[str, Any]:
        ctx: Context = info.context
        acct = ctx.account()
        return _model(ctx.engine, ctx.engine.model(modelId, acct["id"]), acct["id"])

    submission_upload_auth = _upload_auth("submission")
    submissionUploadSignalsAuth = _upload_auth("signals")
    diagnosticsUploadAuth = _upload_auth("diagnostics")
    diagnostics = _calls("diagnostics", "modelId", "id", account=True)

    def submissions(self, info: Any, modelId: str | None = None) -> list[dict[str, Any]]:
        ctx: Context = info.context
        acct = ctx.account()
        models = [ctx.engine.model(modelId, acct["id"])] if modelId else ctx.engine.models_of(acct["id"])
        out = []
        for m in models:
            out += [_submission(ctx.engine, s) for s in ctx.engine.submissions(m["id"], acct["id"])]
        return out

    def pendingModelPayouts(self, info: Any, tournament: int | None = None) -> dict[str, Any]:
        ctx: Context = info.context
        return ctx.engine.payouts(ctx.account()["id"])

    def create_submission(self, info: Any, filename: str, **args: Any) -> dict[str, Any]:
        """(tournament and dataDatestamp are Numerai's; the round and the model say them here)"""
        ctx: Context = info.context
        created = ctx.engine.create_submission(
            ctx.account(),
            filename,
            args.get("modelId"),
            source=args.get("source"),
            trigger_id=args.get("triggerId"),
        )
        return {"id": created["id"]}

    createSignalsSubmission = _calls("create_signals_submission", "filename", "modelId", account=True)

    createDiagnostics = _calls("create_diagnostics", "filename", "modelId", account=True, then=_as_id)
    v2ChangeStake = _calls("stake_change", "modelId", "value", "type", account=True)
    releaseStake = _calls("release_stake", "modelId", "amount", "drain", account=True)

    # ---------------------------------------------------------------- leaderboards, pipeline (public)
    v2Leaderboard = _calls("leaderboard", "limit", "offset")

    def accountLeaderboard(
        self, info: Any, limit: int, offset: int, tournament: int | None = None
    ) -> list[dict[str, Any]]:
        if tournament not in (None, CLASSIC):
            return []  # the simulator's accounts compete in Classic only
        return info.context.engine.account_leaderboard(limit, offset)

    pipelineStatus = _calls("pipeline_status", "date", "tournament")

    # ---------------------------------------------------------------- profile, downloads (private)
    setUserBio = _calls("set_bio", "modelId", "value", account=True)
    setUserLink = _calls("set_link", "modelId", "linkText", "linkUrl", account=True)
    setSubmissionWebhook = _calls("set_submission_webhook", "modelId", "newSubmissionWebhook", account=True)

    def submissionDownloadAuth(self, info: Any, id: str | None = None) -> dict[str, str]:
        ctx: Context = info.context
        found = ctx.engine.submission_download(ctx.account(), id)
        return {"filename": found["filename"], "url": ctx.base_url + found["url_path"]}

    # ---------------------------------------------------------------- Model Upload (private)
    computePickleUploadAuth = _upload_auth("compute_pickle")

    def computePickleDataVersions(self, info: Any) -> list[dict[str, str]]:
        return compute_choices("data")

    def computePickleDockerImages(self, info: Any) -> list[dict[str, str]]:
        return compute_choices("image")

    createComputePickleUpload = _calls(
        "create_compute_upload",
        "filename",
        "modelId",
        "dataVersionId",
        "dockerImageId",
        account=True,
        then=_as_id,
    )

    # ---------------------------------------------------------------- staking v3 (private)
    def v3StakeConfig(self, info: Any) -> dict[str, Any]:
        """No contract: no addresses, and paused (nothing can be staked on chain here)."""
        keys = ("address", "authorizationSigner", "nmrAddress", "owner", "pendingOwner", "serviceWallet")
        return {**dict.fromkeys(keys), "paused": True}

    def v3StakeRound(self, info: Any, roundId: str) -> dict[str, Any]:
        """A round as staking v3 describes it (by its id or its number), from the simulator's books."""
        engine: TournamentEngine = info.context.engine
        r = next((x for x in engine.rounds() if roundId in (x["id"], str(x["number"]))), None)
        if r is None:
            raise NotFoundError(f"Round {roundId} not found")
        paid = engine.round_payout_totals(int(r["number"]))
        return {
            "roundId": r["id"],
            "tournamentId": str(r["tournament"]),
            "openTime": engine.shown(r["open_time"]),
            "closeTime": engine.shown(r["close_time"]),
            "resolveTime": engine.shown(r["resolve_time"]),
            "resolved": bool(r["resolved"]),
            "state": r["status"],
            "payoutFactor": r["payout_factor"],
            "stakeThreshold": str(r["config"]["stake_threshold"]),
            "stakeCap": None,
            "totalStaked": r["total_at_risk"],
            "totalPayout": paid["payout"] if r["resolved"] else None,
            "remainingPayout": "0" if r["resolved"] else None,  # settled into stakes at resolution
            "remainingBurn": "0" if r["resolved"] else None,
            "merkleRoot": None,
        }

    def v3StakeAuth(self, info: Any, submissionId: str, staker: str, maxAmount: str) -> dict[str, Any]:
        raise ApiError(NO_CHAIN)

    def v3StakeClaim(self, info: Any, roundId: str, modelId: str, staker: str) -> dict[str, Any]:
        raise ApiError(NO_CHAIN)
