"""tournament/ room: the Numerai client, submission validation, the daily round, performance and stakes.

- ``client/``: :class:`~numerflow.tournament.client.NumeraiClient`, numerapi with timeouts, retries,
  real error messages and checked, once-only uploads (one module per concern).
- ``validation``: is this predictions file one Numerai will take? (and our stricter checks)
- ``round``: ``run_round`` (live → predict → validate → upload → confirm → record) and ``RoundWatcher``.
- ``submit``: ``numerflow submit MODEL FILE``.
- ``performance``: scores and payouts into the database, and the per-round table.
- ``stakes``: show and change stakes within the guard rails.
"""
