"""NMR settings (``tournament.max_stake_change_nmr`` ...) are exact Decimals: a TOML number is read from its
text as written, a decimal string is taken too, and a bad value is a one-line error naming the key, the
value and what to write."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from numerflow.config import NMR_KEYS, STARTER_CONFIG, load_settings, read_toml, settings_from_raw
from numerflow.errors import ConfigError
from numerflow.ops.config_edit import parse_value


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "numerflow.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env={})


def test_every_nmr_key_of_the_config_is_exact() -> None:
    assert NMR_KEYS == (
        "tournament.max_stake_change_nmr",
        "tournament.max_stake_nmr",
        "portfolio.total_at_risk_nmr",
        "portfolio.payout_threshold_nmr",
        "portfolio.min_stake_nmr",
        "portfolio.max_stake_nmr",
    )


@pytest.mark.parametrize(
    ("written", "amount"),
    [
        ("10", "10"),
        ("10.5", "10.5"),
        ("10.50", "10.5"),
        ("0.1", "0.1"),  # not 0.1000000000000000055511151231257827...
        ("1_000.25", "1000.25"),
        ("2.5e1", "25"),
        ("1234.123456789012345678", "1234.123456789012345678"),  # 22 digits: more than a float holds
        ("0.000000000000000001", "0.000000000000000001"),
        ('"0.1"', "0.1"),
        ('"12"', "12"),
        ('"1234.123456789012345678"', "1234.123456789012345678"),
        ("0", "0"),
        ("-0.0", "0"),
    ],
)
def test_a_number_or_a_decimal_string_is_read_exactly_as_written(
    tmp_path: Path, written: str, amount: str
) -> None:
    settings = _load(tmp_path, f"[tournament]\nmax_stake_change_nmr = {written}\n")
    value = settings.tournament.max_stake_change_nmr
    assert isinstance(value, Decimal)
    assert value == Decimal(amount) and format(value, "f") == amount
    assert settings.model_dump(mode="json")["tournament"]["max_stake_change_nmr"] == amount


def test_point_one_is_the_decimal_not_the_binary_float(tmp_path: Path) -> None:
    settings = _load(tmp_path, "[tournament]\nmax_stake_change_nmr = 0.1\nmax_stake_nmr = 0.3\n")
    rail = settings.tournament
    assert rail.max_stake_change_nmr == Decimal("0.1")
    assert rail.max_stake_change_nmr != Decimal(float("0.1"))  # the float's value, 0.1000000000000000055...
    assert (
        rail.max_stake_change_nmr * 3 == rail.max_stake_nmr
    )  # 0.1 * 3 is 0.3 (as floats 0.30000000000000004)


def test_the_other_keys_stay_plain_floats(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        "[tournament]\npoll_interval_s = 0.5\n[models.m]\nalgorithm = 'ridge'\nparams = { alpha = 0.1 }\n",
    )
    assert type(settings.tournament.poll_interval_s) is float
    assert type(settings.models["m"].params["alpha"]) is float  # never a str-carrying subclass in a model


def test_defaults_and_python_values(tmp_path: Path) -> None:
    settings = settings_from_raw({}, None, env={})
    assert settings.tournament.max_stake_change_nmr == Decimal(10)
    assert settings.portfolio.total_at_risk_nmr == Decimal(90_000)
    assert settings.tournament.max_stake_nmr is None
    # a dict of Python values (tests, callers): a float by its shortest form, as the store takes one
    raw = {"tournament": {"max_stake_change_nmr": 0.1, "max_stake_nmr": Decimal("7.25")}}
    settings = settings_from_raw(raw, None, env={})
    assert settings.tournament.max_stake_change_nmr == Decimal("0.1")
    assert settings.tournament.max_stake_nmr == Decimal("7.25")
    settings.tournament.max_stake_change_nmr = "2.5"  # type: ignore[assignment]  # assignment validates
    assert settings.tournament.max_stake_change_nmr == Decimal("2.5")


def test_the_starter_config_is_valid_and_exact(tmp_path: Path) -> None:
    settings = _load(tmp_path, STARTER_CONFIG)
    assert settings.tournament.max_stake_change_nmr == Decimal(10)


def test_a_typed_value_keeps_its_text() -> None:
    value = parse_value("1234.123456789012345678")
    assert value == 1234.123456789012345678 and value.text == "1234.123456789012345678"
    assert read_toml("a = 0.1")["a"].text == "0.1"


WHAT_TO_WRITE = 'write a number like 10 or 0.5, or a decimal string like "0.5"'


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("-5", r"Input should be greater than or equal to 0 \(got -5\)$"),
        ('"-0.5"', r"Input should be greater than or equal to 0 \(got -0.5\)$"),
        ("inf", f"tournament.max_stake_change_nmr: an NMR amount must be a finite decimal .*{WHAT_TO_WRITE}"),
        ("nan", r"an NMR amount must be a finite decimal .* \(got nan\)$"),
        ('"ten"', r"tournament\.max_stake_change_nmr: an NMR amount .* \(got 'ten'\)$"),
        ('"1e3"', r"an NMR amount .* \(got '1e3'\)$"),  # no exponent in a string, as the API
        ("true", r"an NMR amount .* \(got True\)$"),
        ("[1]", "tournament.max_stake_change_nmr: an NMR amount"),
        # 19 decimals: shown as written, not as the float it rounds to
        ("0.1234567890123456789", r"and 18 after the point; .* \(got 0.1234567890123456789\)$"),
        ('"0.0000000000000000001"', r"18 after the point; .* \(got '0.0000000000000000001'\)$"),
        ("1e18", r"at most 18 digits before .* \(got 1e18\)$"),
    ],
)  # fmt: skip
def test_a_bad_amount_is_one_line_naming_key_value_and_what_to_write(
    tmp_path: Path, written: str, message: str
) -> None:
    path = tmp_path / "numerflow.toml"
    path.write_text(f"[tournament]\nmax_stake_change_nmr = {written}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path.resolve()}: tournament.max_stake_change_nmr: ")
    assert re.search(message, text), text
    assert info.value.exit_code == 2


def test_a_bound_above_zero_is_kept(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"portfolio\.total_at_risk_nmr: Input should be greater than 0 \(got 0\)"
    ):
        _load(tmp_path, '[portfolio]\ntotal_at_risk_nmr = "0"\n')
