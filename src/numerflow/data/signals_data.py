"""``numerflow signals data``: Numerai's Signals (or Crypto) files and the participant's own prices.

* **Numerai's files** come through the one downloader (:func:`numerflow.data.download.download_for_project`:
  verified, resumable, recorded in the manifest, under the one retry policy): the files of
  :data:`SIGNALS_VERSION` (``signals/v2.1``; :data:`CRYPTO_VERSION`, ``crypto/v2.0``, with ``crypto``) as the
  downloader's version ``signals`` (``crypto``) and files ``v2.1/<file>``, so they land where the Signals
  models read them (modeling/signals_models.py): ``<data_dir>/signals/v2.1/<file>``, and the round's files
  (``live*``) in ``<data_dir>/signals/rounds/<round>/v2.1/<file>``. The source must list the tournament's
  files (a client for tournament 11 or 12: Numerai lists Signals files only to a Signals client).
* **Own prices** (``prices``): :func:`numerflow.data.prices.read_checked_prices`, the function behind
  ``numerflow signals prices check``, mapped to Numerai's tickers of the round's ``live.parquet`` just
  downloaded (or to ``universe`` when given). The price file and the column mapping are checked before
  anything is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from numerflow.data.download import DatasetSource, Manifest, ProgressCallback, download_for_project
from numerflow.data.prices import PriceColumns, PriceReport, read_checked_prices
from numerflow.errors import DataError

if TYPE_CHECKING:
    from numerflow.config import Settings

SIGNALS_VERSION = "signals/v2.1"
CRYPTO_VERSION = "crypto/v2.0"
SIGNALS_TOURNAMENT, CRYPTO_TOURNAMENT = 11, 12
UNIVERSE_FILE = "live.parquet"  # the round's universe: numerai_ticker (Signals) or symbol (Crypto)


@dataclass(frozen=True)
class PriceCheck:
    """What to check a price file with (``numerflow signals prices check``'s options)."""

    split_threshold: float = 0.5
    max_gap_days: int = 5
    stale_days: int = 10


@dataclass
class SignalsData:
    """What :func:`fetch_signals_data` did: the files (local paths, in the order asked), the universe the
    prices were mapped to, and the price report (None without ``prices``)."""

    version: str
    files: list[Path]
    universe: Path | None
    prices: PriceReport | None


def fetch_signals_data(
    settings: Settings,
    source: DatasetSource,
    files: Sequence[str] | None = None,
    *,
    crypto: bool = False,
    prices: Path | str | None = None,
    columns: Mapping[str, str] | None = None,
    universe: Path | str | None = None,
    check: PriceCheck | None = None,
    manifest: Manifest | None = None,
    round_num: int | None = None,
    progress: ProgressCallback | None = None,
    force: bool = False,
) -> SignalsData:
    """Download the tournament's files (all of its version, or ``files``) and, with ``prices``, load, check
    and map the user's daily prices. DataError for a bad price path or column mapping (before any
    download), for prices with ``crypto`` (the price mapping knows stock tickers only), and whatever
    the downloader raises."""
    version = CRYPTO_VERSION if crypto else SIGNALS_VERSION
    kind, sub = version.split("/")  # the downloader's version and the files' folder: signals, v2.1
    wanted = [f"{sub}/{f.removeprefix(f'{version}/')}" for f in files or []]
    if prices is not None:
        if crypto:
            raise DataError(
                "--prices maps stock prices to Signals' numerai_ticker universe; drop --crypto "
                "(or check crypto prices with `numerflow signals prices check`)"
            )
        cols = PriceColumns.from_mapping(columns)  # a bad mapping fails here, before any download
        if not Path(prices).exists():
            raise DataError(
                f"{prices}: no such price file or folder; give a .csv, .csv.gz or .parquet file or a folder"
            )
        if universe is None and wanted and f"{sub}/{UNIVERSE_FILE}" not in wanted:
            wanted.append(f"{sub}/{UNIVERSE_FILE}")  # the prices are mapped to the round's live universe
    if not wanted:  # every file of the version (not the other versions Numerai still lists)
        listing = source.list_datasets(round_num)
        wanted = [n.removeprefix(f"{kind}/") for n in listing if n.startswith(f"{version}/")]
        wanted = [n for n in wanted if n.endswith((".parquet", ".json"))]
        if not wanted:
            raise DataError(f"the server offers no {version} files; is this Numerai's Signals API?")
    paths = download_for_project(
        settings,
        source,
        wanted,
        version=kind,
        manifest=manifest,
        round_num=round_num,
        progress=progress,
        force=force,
    )
    report, used = None, None
    if prices is not None:
        used = Path(universe) if universe is not None else _universe_file(paths, version)
        opts = check or PriceCheck()
        report = read_checked_prices(
            prices,
            cols,
            universe=used,
            split_threshold=opts.split_threshold,
            max_gap_days=opts.max_gap_days,
            stale_days=opts.stale_days,
        )
    return SignalsData(version, paths, used, report)


def _universe_file(paths: Sequence[Path], version: str) -> Path:
    for path in paths:
        if path.name == UNIVERSE_FILE and path.parent.name == version.rpartition("/")[2]:
            return path
    raise DataError(f"the server offers no {version}/{UNIVERSE_FILE} to map the prices to; pass --universe")
