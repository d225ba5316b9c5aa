"""``numerflow sim serve`` takes its options from one table (cli/sim_options.py): every field is an option
with its flag, and together they are the keyword arguments of the simulator's engine."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import pytest
import typer

from numerflow.cli.sim import sim_app
from numerflow.cli.sim_options import SimServeOptions
from numerflow.config import SimSettings
from numerflow.errors import ConfigError


def _serve_params() -> dict[str, list[str]]:
    group = typer.main.get_group(sim_app)
    return {p.name: [*p.opts, *p.secondary_opts] for p in group.commands["serve"].params if p.name}


def test_every_field_is_an_option_with_its_flag() -> None:
    params = _serve_params()
    for f in fields(SimServeOptions):
        assert f.name in params, f.name
        assert params[f.name] == f.metadata["flag"].split("/"), f.name


def test_the_options_are_the_engines_keyword_arguments() -> None:
    from numerflow.simulator import TournamentEngine

    kwargs = SimServeOptions().engine_kwargs(SimSettings())
    accepted = set(inspect.signature(TournamentEngine).parameters) - {"state_dir"}
    assert set(kwargs) <= accepted
    assert kwargs["clock_speed"] == SimSettings().clock_speed  # unset: the [sim] section's


def test_unset_options_fall_back_to_the_sim_section(tmp_path: Path) -> None:
    sim = SimSettings(host="0.0.0.0", port=9999, data_dir=Path("here"), clock_speed=3.0)
    assert SimServeOptions().address(sim) == ("0.0.0.0", 9999)
    assert SimServeOptions(port=0, host="127.0.0.1").address(sim) == ("127.0.0.1", 0)
    assert SimServeOptions().state_folder(sim, tmp_path) == tmp_path / "here"
    assert SimServeOptions(state_dir=tmp_path / "s").state_folder(sim, tmp_path) == tmp_path / "s"
    assert SimServeOptions(clock_speed=5.0).engine_kwargs(sim)["clock_speed"] == 5.0


def test_a_bad_payout_rule_fails_before_anything_is_made() -> None:
    with pytest.raises(ConfigError, match="classic"):
        SimServeOptions(rule_name="classic").engine_kwargs(SimSettings())
