"""``/ws/events``: job progress and logs, round status changes and new scores, as JSON messages.

Authenticate with ``Authorization: Bearer <token>`` (any scope) or the dashboard's session cookie; a
connection without valid credentials is accepted and closed at once with code 4401 (4403 for a
cookie-authenticated connection from a foreign Origin).

A connection lives only as long as its credentials: revoking its API token or logging out of its session
in this service closes it at once (code 4401); a revocation elsewhere (the CLI, another process) is caught
by a re-check every ``app.state.ws_recheck_s`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from numerflow.errors import NumerflowError
from numerflow.service.auth import authenticate

router = APIRouter()


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if not origin:
        return True  # not a browser
    host = ws.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


@router.websocket("/ws/events")
async def events(ws: WebSocket) -> None:
    try:
        principal = await asyncio.to_thread(authenticate, ws, check_csrf=False)
    except NumerflowError as exc:
        await ws.accept()
        await ws.close(code=4401, reason=exc.message[:120])
        return
    if principal.via_cookie and not _same_origin(ws):  # cross-site WebSocket hijacking
        await ws.accept()
        await ws.close(code=4403, reason="cross-origin WebSocket refused")
        return
    await ws.accept()
    state = ws.app.state
    revoked = state.sockets.register(token_id=principal.token_id, session=principal.session)
    loop = asyncio.get_running_loop()
    async with state.bus.subscribe() as queue:
        await ws.send_text(json.dumps({"type": "hello", "user": principal.name, "scope": principal.scope}))
        receiver = asyncio.create_task(_drain(ws))
        revocation = asyncio.create_task(revoked.wait())
        next_check = loop.time() + state.ws_recheck_s
        try:
            while not receiver.done():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait(
                    {getter, receiver, revocation},
                    timeout=max(0.0, next_check - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if getter not in done:
                    getter.cancel()
                if revocation in done or (not done and not await asyncio.to_thread(_still_valid, ws)):
                    await ws.close(code=4401, reason="credentials revoked or expired; log in again")
                    break
                if not done:
                    next_check = loop.time() + state.ws_recheck_s
                    continue
                if getter not in done:
                    break  # the client went away
                await ws.send_text(json.dumps(getter.result(), default=str))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            state.sockets.unregister(revoked)
            for task in (receiver, revocation):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def _still_valid(ws: WebSocket) -> bool:
    """Whether the socket's credentials still authenticate (token not revoked, session live)."""
    try:
        authenticate(ws, check_csrf=False)
    except NumerflowError:
        return False
    return True


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) client messages until the client goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await ws.receive_text()
