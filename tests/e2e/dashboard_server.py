"""Run the real numerflow service (``create_app``) under uvicorn in a thread on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from dashboard_seed import PASSWORD


@contextlib.contextmanager
def serve(settings: Any, *, background: bool = True) -> Iterator[tuple[str, Any]]:
    """Yields (base url without trailing slash, app) while the service runs; stops it afterwards."""
    import uvicorn

    from numerflow.service.app import create_app

    app = create_app(settings, background=background)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="auto")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the numerflow service did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def login(page: Any, base: str, username: str, password: str = PASSWORD, next_path: str = "/") -> None:
    """Log in through the login form; the browser lands on ``next_path``."""
    page.goto(f"{base}/login?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{next_path}")
