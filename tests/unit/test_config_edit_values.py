"""How ``numerflow config set`` and the Settings page read a typed value, and write a table back."""

from __future__ import annotations

import pytest

from numerflow.errors import ConfigError
from numerflow.ops.config_edit import parse_value, split_key, table_text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", 5),
        ("0.25", 0.25),
        ("true", True),
        ('["a", "b"]', ["a", "b"]),
        ("{ alpha = 1.0 }", {"alpha": 1.0}),
        ('"5"', "5"),  # quoted: a string, not a number
        ("lightgbm", "lightgbm"),  # not TOML: a plain string
        ("0 6 * * 1", "0 6 * * 1"),
        ('algorithm = "ridge"\nparams = { alpha = 2.0 }', {"algorithm": "ridge", "params": {"alpha": 2.0}}),
    ],
)
def test_values_read_as_toml_or_plain_strings(text: str, value: object) -> None:
    assert parse_value(text) == value


def test_a_broken_table_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"^value 'algorithm =': not valid TOML"):
        parse_value("algorithm = ")


def test_a_table_written_back_reads_the_same() -> None:
    spec = {"algorithm": "ridge", "params": {"alpha": 2.0, "fit_intercept": False}, "targets": ["target"]}
    assert parse_value(table_text(spec)) == spec


@pytest.mark.parametrize("key", ["", "a..b", "models.my model", "x" * 200, "tournament.max$"])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="give a dotted key"):
        split_key(key)
