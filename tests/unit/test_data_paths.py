"""Where a downloaded file may land: inside ``<data_dir>/<version>``, whatever a server or a user names."""

from __future__ import annotations

from pathlib import Path

import pytest

from numerflow.data.download import local_path
from numerflow.errors import DataError


@pytest.mark.parametrize(
    ("version", "name", "said"),
    [
        ("v5.3", "../../x.json", "would be written outside"),
        ("v5.3", "/etc/passwd", "would be written outside"),
        ("v5.3", "a/../../x.json", "would be written outside"),
        ("v5.3", "..\\..\\x.json", "would be written outside"),
        ("v5.3", "x.json\x00.parquet", "would be written outside"),
        ("v5.3", "", "would be written outside"),
        ("..", "train.parquet", "is not a plain folder name"),
        ("/etc", "passwd", "is not a plain folder name"),
        ("v5.3", "rounds/../../live.parquet", "would be written outside"),
    ],
)
def test_a_name_outside_the_version_folder_is_refused(tmp_path: Path, version: str, name: str, said: str):
    with pytest.raises(DataError, match=said):
        local_path(tmp_path, version, name, 1000)


def test_a_link_inside_the_folder_pointing_out_of_it_is_refused(tmp_path: Path) -> None:
    (tmp_path / "v5.3").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "v5.3" / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DataError, match=r"resolves outside .* \(through a link\)"):
        local_path(tmp_path, "v5.3", "sub/train.parquet")


def test_plain_names_land_where_they_should(tmp_path: Path) -> None:
    assert local_path(tmp_path, "v5.3", "train.parquet") == tmp_path / "v5.3" / "train.parquet"
    live = local_path(tmp_path, "v5.3", "live.parquet", 1000)
    assert live == tmp_path / "v5.3" / "rounds" / "1000" / "live.parquet"
    assert local_path(tmp_path, "signals/v2.0", "train.parquet") == tmp_path / "signals/v2.0/train.parquet"
