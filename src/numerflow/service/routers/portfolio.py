"""``GET /api/portfolio``: backtests, live equity, risk figures and payout correlations (the "Risk & stakes"
page's data; see :func:`numerflow.tournament.stake_plan.portfolio_view`). ``POST /api/portfolio/plan``
(operate): the stake plan, and with ``apply`` this round's changes through the hardened stake path."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from numerflow.errors import ConflictError, PortfolioError
from numerflow.service.accounts import Principal
from numerflow.service.auth import require_operate, require_read
from numerflow.service.readcache import cached_json
from numerflow.service.schemas import NMR_DESCRIPTION, Nmr
from numerflow.store.base import money_text

router = APIRouter(tags=["portfolio"])


@router.get(
    "/api/portfolio",
    response_model=dict[str, Any],
    summary="Saved backtests, live equity, risk figures and payout correlations",
)
async def get_portfolio(request: Request, _: Principal = Depends(require_read)) -> Response:
    from numerflow.tournament.stake_plan import portfolio_view

    settings, engine = request.app.state.settings, request.app.state.engine
    return await cached_json(request, ("portfolio",), lambda: portfolio_view(settings, engine))


BUDGET_BELOW = 100_000_000  # NMR; all there is is 11 million


def _budget_range(value: Decimal) -> Decimal:
    if not 0 <= value < BUDGET_BELOW:
        raise PydanticCustomError(
            "nmr_budget", "a budget is 0 or more NMR, below {below}, not {value}",
            {"below": str(BUDGET_BELOW), "value": money_text(value)},
        )  # fmt: skip
    return value


Budget = Annotated[
    Nmr,
    AfterValidator(_budget_range),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^[0-9]{1,8}(\.[0-9]{1,18})?$"},
                {"type": "number", "minimum": 0, "exclusiveMaximum": BUDGET_BELOW},
            ],
            "description": NMR_DESCRIPTION + "; 0 or more, below 100000000; a JSON number is taken too",
        },
        mode="validation",
    ),
]


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budget: Budget | None = Field(None, description="NMR to split (default: the stakes now)")
    method: Literal["risk-parity", "mean-variance", "kelly"] = Field(
        "risk-parity", description="risk-parity, mean-variance or kelly"
    )
    apply: bool = Field(False, description="ask for this round's stakes through the guard rails")


@router.post(
    "/api/portfolio/plan",
    summary="A stake plan for the account's models; with apply=true, this round's changes are requested",
)
def post_plan(body: PlanIn, request: Request, _: Principal = Depends(require_operate)) -> dict[str, Any]:
    from numerflow.tournament.client import NumeraiClient
    from numerflow.tournament.stake_plan import apply_plan, make_plan, plan_json

    settings, engine = request.app.state.settings, request.app.state.engine
    client = NumeraiClient.from_settings(settings)
    try:
        account = make_plan(settings, engine, client, budget=money_text(body.budget), method=body.method)
    except PortfolioError as exc:
        # the request itself is valid (the schema says so): what refuses it is the project's state
        # (too little history, a budget below the minimum stakes): 409 with the same one line
        raise ConflictError(exc.message) from None
    if body.apply:
        account = apply_plan(settings, engine, client, account, confirmed=True)
        request.app.state.reads.invalidate()
    return plan_json(account)
