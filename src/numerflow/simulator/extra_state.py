"""Tables of the simulator's state beyond the core ones in state.py (same SQLite file, same metadata).

They are registered on :data:`numerflow.simulator.state.metadata` when this module is imported (the engine
imports it before opening the state), so ``create_all`` adds them to a state made before they existed.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Integer, String, Table, Text

from numerflow.simulator.state import metadata

# what a model shows about itself: bio, link, the Compute webhook
model_profiles = Table(
    "model_profiles",
    metadata,
    Column("model_id", String, primary_key=True),
    Column("bio", Text),
    Column("link_text", Text),
    Column("link_url", Text),
    Column("submission_webhook", Text),
)

# submissions made after their round's window closed: scored, never staked (no payouts row)
late_submissions = Table(
    "late_submissions",
    metadata,
    Column("submission_id", String, primary_key=True),
    Column("round_number", Integer, nullable=False, index=True),
)

# Model Upload (Numerai Compute) pickles; the newest of a model runs at each round open (compute.py)
compute_uploads = Table(
    "compute_uploads",
    metadata,
    Column("id", String, primary_key=True),
    Column("model_id", String, nullable=False, index=True),
    Column("key", String, nullable=False),
    Column("filename", String, nullable=False),
    Column("data_version", String, nullable=False),
    Column("docker_image", String, nullable=False),
    Column("inserted_at", Float, nullable=False),
    Column("sha256", String, nullable=False),
    Column("size", Integer, nullable=False),
)

# one run of a model's newest pickle at a round open (a Numerai Compute "trigger")
compute_runs = Table(
    "compute_runs",
    metadata,
    Column("id", String, primary_key=True),
    Column("upload_id", String, nullable=False, index=True),
    Column("model_id", String, nullable=False, index=True),
    Column("round_number", Integer, nullable=False),
    Column("status", String, nullable=False),  # success | failed
    Column("description", Text),  # one line: what happened
    Column("log", Text),  # the child's stderr tail (the traceback), shown to the model's owner
    Column("started_at", Float, nullable=False),
    Column("submission_id", String),
)

# a tournament whose rounds resolve after the round's own 20 scoring days (Signals: Alpha and MPC score for
# 60 days): its payouts in the round settle at this row's resolve_time, not at the round's (signals.py)
late_resolutions = Table(
    "late_resolutions",
    metadata,
    Column("round_number", Integer, primary_key=True),
    Column("tournament", Integer, primary_key=True),
    Column("resolve_time", Float, nullable=False),
    Column("resolved", Boolean, nullable=False, default=False),
)
