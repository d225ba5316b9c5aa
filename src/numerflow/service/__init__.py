"""service/ room: the control room over HTTP (see ../shared/ARCHITECTURE.md and the README's "Service").

- ``app.create_app(settings) -> FastAPI``: routers, JSON errors, lifespan (jobs poller, scheduler, round
  watcher); includes ``service.dashboard`` when present (its docstring lists the hooks).
- ``auth`` (bearer tokens, session cookie, CSRF, ``RequireScope``), ``accounts`` (users, tokens; also used by
  the CLI), ``jobs`` (Dask, the jobs table, cancel/retry/interrupted), ``jobkinds`` (train, cv, tune,
  download, round, perf_sync), ``scheduler`` (cron schedules, round watcher), ``events`` (WebSocket bus),
  ``queries`` (fast reads, the overview cache), ``routers/`` (one module per resource family).
"""
