"""Login/logout (session cookie) and the admin resources: API tokens and users."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.engine import Engine

from numerflow.service import accounts
from numerflow.service.accounts import Principal
from numerflow.service.auth import (
    clear_user_cache,
    end_session,
    log_in,
    require_admin,
    require_read,
)
from numerflow.service.deps import DbInt, get_engine
from numerflow.service.schemas import LoginIn, LoginOut, TokenCreated, TokenIn, TokenOut, UserIn, UserOut

router = APIRouter(tags=["auth"])


@router.post(
    "/api/auth/login",
    response_model=LoginOut,
    summary="Log in; sets the session cookie (429 with Retry-After after too many failures)",
)
def login(body: LoginIn, request: Request, response: Response) -> LoginOut:
    user, csrf = log_in(request, response, body.username, body.password)
    return LoginOut(username=user.username, role=user.role, csrf_token=csrf)  # type: ignore[arg-type]


@router.post("/api/auth/logout", status_code=204, summary="Log out; revokes the session, clears the cookie")
def logout(request: Request, response: Response, _: Principal = Depends(require_read)) -> Response:
    end_session(request, response)
    response.status_code = 204
    return response


@router.get("/api/tokens", response_model=list[TokenOut], summary="API tokens (never the tokens themselves)")
def list_tokens(
    engine: Engine = Depends(get_engine), _: Principal = Depends(require_admin)
) -> list[TokenOut]:
    return [TokenOut(**t.__dict__) for t in accounts.list_tokens(engine)]


@router.post(
    "/api/tokens", response_model=TokenCreated, status_code=201, summary="Create a token (shown only once)"
)
def create_token(
    body: TokenIn, engine: Engine = Depends(get_engine), principal: Principal = Depends(require_admin)
) -> TokenCreated:
    info, token = accounts.create_token(engine, body.name, body.scope, created_by=principal.name)
    return TokenCreated(**info.__dict__, token=token)


@router.delete("/api/tokens/{token_id}", response_model=TokenOut, summary="Revoke a token")
def revoke_token(
    token_id: DbInt,
    request: Request,
    engine: Engine = Depends(get_engine),
    _: Principal = Depends(require_admin),
) -> TokenOut:
    info = accounts.revoke_token(engine, token_id)
    request.app.state.sockets.revoke(token_id=info.id)  # its open WebSockets close now
    return TokenOut(**info.__dict__)


@router.get("/api/users", response_model=list[UserOut], summary="Dashboard users")
def list_users(engine: Engine = Depends(get_engine), _: Principal = Depends(require_admin)) -> list[UserOut]:
    return [UserOut(**u.__dict__) for u in accounts.list_users(engine)]


@router.post("/api/users", response_model=UserOut, status_code=201, summary="Add a dashboard user")
def create_user(
    body: UserIn, engine: Engine = Depends(get_engine), _: Principal = Depends(require_admin)
) -> UserOut:
    info = accounts.create_user(engine, body.username, body.password, body.role)
    clear_user_cache()
    return UserOut(**info.__dict__)
