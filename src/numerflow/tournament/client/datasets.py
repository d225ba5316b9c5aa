"""Datasets: the listing and the download URLs the data layer's downloader fetches (DatasetSource)."""

from __future__ import annotations

from numerflow.errors import ApiError
from numerflow.tournament.client.core import ClientCore

_DATASET = """
query($filename: String! $round: Int $tournament: Int) {
  dataset(filename: $filename round: $round tournament: $tournament)
}
"""


class DatasetsMixin(ClientCore):
    def list_datasets(self, round_num: int | None = None) -> list[str]:
        """Every file the server offers, e.g. ``v5.3/live.parquet`` (for ``round_num`` when given)."""
        names = super().list_datasets(round_num)
        if not isinstance(names, list):
            raise ApiError(f"listDatasets: expected a list of file names, got {type(names).__name__}")
        return [str(n) for n in names]

    def dataset_url(self, filename: str, round_num: int | None = None) -> str:
        """A download URL for ``filename`` (e.g. ``v5.3/live.parquet``) of the current or given round."""
        variables = {"filename": filename, "round": round_num, "tournament": self.tournament_id}
        url = self.raw_query(_DATASET, variables)["data"]["dataset"]
        if not url:
            raise ApiError(f"dataset: the server has no file {filename!r}; see `numerflow data list`")
        return str(url)
