"""Where data files are read from (paths, file:// and fsspec URLs), where Dask workers read them
(``[service] dask_data_url``) and how a distributed fit cuts eras into partitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from numerflow.config import load_settings
from numerflow.data.sources import as_source, join, source_name
from numerflow.errors import ConfigError
from numerflow.modeling.distributed import era_blocks, worker_source


def test_a_plain_path_or_file_url_is_a_path_and_other_schemes_stay_urls(tmp_path: Path) -> None:
    assert as_source(str(tmp_path / "train.parquet")) == tmp_path / "train.parquet"
    assert as_source(f"file://{tmp_path}/a%20b/train.parquet") == tmp_path / "a b" / "train.parquet"
    assert as_source("http://host:8000/base/v5.3/train.parquet") == "http://host:8000/base/v5.3/train.parquet"
    assert as_source("s3://bucket/numerai/train.parquet") == "s3://bucket/numerai/train.parquet"
    assert source_name("gcs://bucket/v5.3/validation.parquet") == "validation.parquet"
    assert join("http://host/base/", "v5.3", "train.parquet") == "http://host/base/v5.3/train.parquet"
    assert join(str(tmp_path), "v5.3", "train.parquet") == tmp_path / "v5.3" / "train.parquet"


def test_workers_read_the_data_folder_under_dask_data_url(project_dir: Path) -> None:
    config = project_dir / "numerflow.toml"
    config.write_text('[paths]\ndata_dir = "data"\n')
    settings = load_settings(config)
    train = settings.data_dir / "v5.3" / "train.parquet"
    assert worker_source(settings, train) == str(train)  # no URL: the same path
    config.write_text('[paths]\ndata_dir = "data"\n[service]\ndask_data_url = "s3://bucket/numerai/"\n')
    settings = load_settings(config)
    assert worker_source(settings, train) == "s3://bucket/numerai/v5.3/train.parquet"
    outside = project_dir / "elsewhere.parquet"
    assert worker_source(settings, outside) == str(outside)  # not under the data folder: a shared path


def test_a_dask_data_url_that_is_not_a_url_is_refused(project_dir: Path) -> None:
    config = project_dir / "numerflow.toml"
    config.write_text('[service]\ndask_data_url = "/shared/data"\n')
    with pytest.raises(ConfigError, match="dask_data_url"):
        load_settings(config)


def test_era_partitions_are_consecutive_whole_eras_at_least_two_per_worker() -> None:
    eras = {f"{e:04d}": 100 for e in range(1, 11)}
    blocks = era_blocks(eras, n_features=10, n_workers=2)
    assert len(blocks) == 4
    assert [e for b in blocks for e in b] == list(eras)  # every era once, in order
    assert era_blocks({"0001": 5, "0002": 5}, n_features=10, n_workers=4) == [["0001"], ["0002"]]
    # 100 eras of 78 MB of features (100,000 rows x 780): ~29 x 256 MB, so 30 partitions of 3-4 eras
    big = {f"{e:04d}": 100_000 for e in range(1, 101)}
    parts = era_blocks(big, n_features=780, n_workers=2)
    assert len(parts) == 30 and {len(b) for b in parts} == {3, 4}
    # an era larger than a partition's budget is still whole
    assert era_blocks({"0001": 10**6, "0002": 10**6}, n_features=780, n_workers=1) == [["0001"], ["0002"]]
