"""Parsing a model's submissions as the server lists them.

What a user would notice: a submission the server lists without ``insertedAt`` (or with a time that has
no offset) no longer crashes ``round run`` / ``submit`` with ``TypeError: can't compare offset-naive and
offset-aware datetimes``; the one that counts for the round is still the latest.
"""

from __future__ import annotations

from datetime import UTC, datetime

from numerflow.tournament.client.submissions import parse_submissions


def _item(sid: str, inserted: str | None, rnd: int = 842) -> dict:
    item = {"id": sid, "filename": f"{sid}.csv", "selected": True, "round": {"tournament": 8, "number": rnd}}
    if inserted is not None:
        item["insertedAt"] = inserted
    return item


def test_a_submission_without_inserted_at_sorts_first_in_its_round() -> None:
    subs = parse_submissions(
        [
            _item("late", "2026-01-01T13:10:00Z"),
            _item("unknown", None),
            _item("early", "2026-01-01T13:05:00Z"),
        ],
        8,
    )
    assert [s.id for s in subs] == ["unknown", "early", "late"]
    assert subs[0].inserted_at is None


def test_times_without_an_offset_are_taken_as_utc_and_sort_with_aware_ones() -> None:
    subs = parse_submissions(
        [
            _item("b", "2026-01-01T13:10:00"),
            _item("a", "2026-01-01T14:05:00+02:00"),  # 12:05 UTC
            _item("older_round", None, rnd=841),
        ],
        8,
    )
    assert [s.id for s in subs] == ["older_round", "a", "b"]
    assert subs[2].inserted_at == datetime(2026, 1, 1, 13, 10, tzinfo=UTC)
    assert subs[1].inserted_at == datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
