"""The web dashboard: overview, model, rounds, jobs, data and settings pages for logged-in users.

``create_app`` includes :data:`router` (the pages, ``/login``, ``/logout``, the plotly.js bundle at
``/vendor/plotly-cartesian.<hash>.min.js``) and calls :func:`mount` (``/static``: the dashboard's CSS and
JavaScript). Everything is served by the service itself, so the dashboard works with no network; plotly.js
is the partial bundle vendored in ``vendor/`` (scatter and bar only), gzip-compressed, with its content
hash in its URL.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from numerflow.service.dashboard.pages import STATIC_DIR, router


class _CachedStatic(StaticFiles):
    """Static files with a long cache lifetime: page links carry ``?v=<hash of the files>``."""

    def file_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=604800"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount(app: FastAPI) -> None:
    app.mount("/static", _CachedStatic(directory=STATIC_DIR), name="dashboard-static")


__all__ = ["mount", "router"]
