"""errors.first_line: a third-party error quoted inside a one-line message."""

from __future__ import annotations

from numerflow.errors import first_line


def test_only_the_first_line_and_nothing_a_terminal_would_not_print() -> None:
    assert first_line(ValueError("Couldn't deserialize thrift: \x0f\nDeserializing failed.\n")) == (
        "Couldn't deserialize thrift: \\x0f"
    )
    assert first_line(OSError("a\tb\x00c")) == "a\\tb\\x00c"
    assert first_line(ValueError("ünïcode stays")) == "ünïcode stays"
    assert first_line(KeyError()) == "KeyError" and first_line(ValueError("  \n ")) == "ValueError"
