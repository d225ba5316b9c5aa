"""The two sides of the wire keep distinct names: the simulator's engine parts are ``Sim*`` and no class of
``numerflow.simulator`` shares its name with one of the client (``numerflow.tournament.client``), so a
traceback or a grep for ``SubmissionsMixin`` always points at one side (issue 15)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "numerflow"


def _classes(folder: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                found[node.name] = str(path.relative_to(PACKAGE))
    return found


def test_simulator_and_client_class_names_are_distinct() -> None:
    sim = _classes(PACKAGE / "simulator")
    client = _classes(PACKAGE / "tournament" / "client")
    shared = {name: (sim[name], client[name]) for name in sim.keys() & client.keys()}
    assert shared == {}, f"one name on both sides of the wire: {shared}"


def test_engine_parts_are_sim_named() -> None:
    from numerflow.simulator.engine import TournamentEngine

    parts = [base.__name__ for base in TournamentEngine.__mro__[1:] if base is not object]
    assert parts, "the engine has no parts"
    assert all(name.startswith("Sim") for name in parts), parts
    assert not any(name.endswith("Mixin") for name in parts), parts


def test_rounds_and_round_scoring_are_objects_not_parts() -> None:
    """Rounds on the clock and round scoring are objects the engine composes (``calendar``, ``scoring``),
    not classes mixed into it."""
    from numerflow.simulator.engine import TournamentEngine
    from numerflow.simulator.round_scoring import SimRoundScoring
    from numerflow.simulator.rounds import SimRounds

    assert SimRounds not in TournamentEngine.__mro__
    assert SimRoundScoring not in TournamentEngine.__mro__
