"""``numerflow report`` and ``validation_report`` on the data layer's synthetic Numerai files."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt

from numerflow.metrics import numerai_corr
from numerflow.report import score_validation, validation_report, write_html_report


@pytest.fixture(scope="module")
def validation(synthetic_dir: Path) -> pd.DataFrame:
    frame = pd.read_parquet(synthetic_dir / "validation.parquet")
    return frame[frame["data_type"] == "validation"]


@pytest.fixture
def two_models(validation: pd.DataFrame, tmp_path: Path) -> Path:
    """Two prediction columns for the validation ids, rows shuffled (matched by id, not by position)."""
    rng = np.random.default_rng(0)
    feats = [c for c in validation.columns if c.startswith("feature_")]
    signal = validation[feats[:5]].mean(axis=1).to_numpy() / 4
    preds = pd.DataFrame(
        {
            "good": np.clip(
                0.7 * (validation["target"].to_numpy() - 0.5) + 0.5 * rng.random(len(validation)), 0, 1
            ),
            "feature_heavy": np.clip(signal + 0.05 * rng.random(len(validation)), 0, 1),
        },
        index=pd.Index(validation.index, name="id"),
    ).sample(frac=1.0, random_state=1)
    path = tmp_path / "preds.csv"
    preds.reset_index().to_csv(path, index=False)
    return path


def test_report_numbers_match_numerai_tools_per_era(
    synthetic_dir: Path, validation: pd.DataFrame, two_models: Path
):
    summary = validation_report(
        two_models,
        synthetic_dir / "validation.parquet",
        meta_model=synthetic_dir / "meta_model.parquet",
        benchmark=synthetic_dir / "validation_benchmark_models.parquet",
    )
    assert list(summary.index) == ["good", "feature_heavy"]
    preds = pd.read_csv(two_models).set_index("id").reindex(validation.index)
    meta = pd.read_parquet(synthetic_dir / "meta_model.parquet")["numerai_meta_model"].reindex(
        validation.index
    )
    bench = pd.read_parquet(synthetic_dir / "validation_benchmark_models.parquet")["v53_lgbm_ender20"]
    frame = preds.assign(target=validation["target"], era=validation["era"], meta=meta, bench=bench)
    groups = frame.dropna(subset=["meta"]).groupby("era")
    corr = frame.groupby("era").apply(lambda g: nt.numerai_corr(g[["good", "feature_heavy"]], g["target"]))
    mmc = groups.apply(
        lambda g: nt.correlation_contribution(g[["good", "feature_heavy"]], g["meta"], g["target"])
    )
    bmc = frame.groupby("era").apply(
        lambda g: nt.correlation_contribution(g[["good", "feature_heavy"]], g["bench"], g["target"])
    )
    np.testing.assert_allclose(summary["corr_mean"], corr.mean().to_numpy(), atol=1e-10)
    np.testing.assert_allclose(summary["corr_std"], corr.std(ddof=0).to_numpy(), atol=1e-10)
    np.testing.assert_allclose(summary["mmc_mean"], mmc.mean().to_numpy(), atol=1e-10)
    np.testing.assert_allclose(summary["bmc_mean"], bmc.mean().to_numpy(), atol=1e-10)
    assert (summary["n_eras"] == validation["era"].nunique()).all()
    # the planted signal shows: the target-based column scores far better; the feature-built one is exposed
    assert summary.loc["good", "corr_mean"] > 0.2 > summary.loc["feature_heavy", "corr_mean"]
    assert (
        summary.loc["feature_heavy", "max_feature_exposure_mean"]
        > summary.loc["good", "max_feature_exposure_mean"]
    )
    fnc_features = json.loads((synthetic_dir / "features.json").read_text())["feature_sets"]["fncv3_features"]
    fnc = (
        validation.assign(p=frame["good"])
        .groupby("era")
        .apply(
            lambda g: nt.feature_neutral_corr(
                g.sort_index()[["p"]], g.sort_index()[fnc_features].astype(float), g.sort_index()["target"]
            ).iloc[0]
        )
    )
    np.testing.assert_allclose(summary.loc["good", "fnc_mean"], fnc.mean(), atol=1e-10)
    assert summary.loc["good", "payout_final"] > 1


def test_cli_report_prints_the_table_and_writes_an_offline_html(
    cli, synthetic_dir: Path, two_models: Path, tmp_path: Path
):
    out = tmp_path / "report.html"
    code, stdout, stderr = cli(
        "report", two_models, "--data", synthetic_dir / "validation.parquet", "--out", out
    )
    assert code == 0, stderr
    for label in (
        "CORR",
        "MMC",
        "BMC",
        "FNC",
        "sharpe",
        "drawdown",
        "exposure",
        "payout",
        "good",
        "feature_heavy",
    ):
        assert label in stdout
    summary = validation_report(
        two_models,
        synthetic_dir / "validation.parquet",
        meta_model=synthetic_dir / "meta_model.parquet",
        benchmark=synthetic_dir / "validation_benchmark_models.parquet",
    )
    assert f"{summary.loc['good', 'corr_mean']:+.4f}" in stdout
    page = out.read_text()
    assert "<script src=" not in page  # nothing fetched from the network
    assert "Plotly" in page and len(page) > 1_000_000  # plotly.js itself is inlined
    for chart in ("chart-cumulative", "chart-drawdown", "chart-per-era", "chart-exposure", "chart-payout"):
        assert chart in page


def test_html_report_renders_its_charts_with_the_network_blocked(
    synthetic_dir: Path, two_models: Path, tmp_path: Path, chromium_path: str
):
    from playwright.sync_api import sync_playwright

    scores = score_validation(
        two_models, synthetic_dir / "validation.parquet", meta_model=synthetic_dir / "meta_model.parquet"
    )
    page_path = write_html_report(scores, tmp_path / "r.html")
    requests: list[str] = []

    def render() -> tuple[int, int]:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium_path,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            page = browser.new_page()
            page.route(
                "**/*",
                lambda route: (
                    requests.append(route.request.url),
                    route.continue_() if route.request.url.startswith("file:") else route.abort(),
                ),
            )
            page.goto(page_path.as_uri())
            page.wait_for_selector("#chart-cumulative .main-svg")
            n_plots = page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
            n_traces = page.evaluate("document.getElementById('chart-cumulative').data.length")
            browser.close()
        return n_plots, n_traces

    # Playwright's sync API refuses a thread with a running asyncio loop; a fresh thread never has one,
    # whatever an earlier test on this xdist worker left behind.
    with ThreadPoolExecutor(max_workers=1) as pool:
        n_plots, n_traces = pool.submit(render).result()
    assert n_plots == 5
    assert n_traces == 4  # CORR and MMC for each of the two columns
    assert all(url.startswith("file:") for url in requests)


def test_multi_column_report_without_meta_model_or_features(synthetic_dir: Path, validation: pd.DataFrame):
    preds = pd.DataFrame(
        {"a": validation["target"].to_numpy(), "b": np.arange(len(validation)) % 7}, index=validation.index
    )
    scores = score_validation(preds, synthetic_dir / "validation.parquet", features=None)
    assert set(scores.per_era) == {"corr", "payout"}
    assert "mmc_mean" not in scores.summary.columns
    era_codes = pd.factorize(validation["era"], sort=True)[0]
    expected = numerai_corr(preds.to_numpy(float), validation["target"].to_numpy(), era_codes)
    np.testing.assert_allclose(scores.per_era["corr"], expected)
    assert any("MMC taken as 0" in note for note in scores.notes)


def test_bad_inputs_get_one_clear_line_and_a_nonzero_exit(
    cli, synthetic_dir: Path, validation: pd.DataFrame, tmp_path: Path
):
    data = synthetic_dir / "validation.parquet"
    no_id = tmp_path / "no_id.csv"
    pd.DataFrame({"prediction": [0.1, 0.2]}).to_csv(no_id, index=False)
    other_ids = tmp_path / "other.csv"
    pd.DataFrame({"id": [f"x{i}" for i in range(50)], "prediction": np.linspace(0, 1, 50)}).to_csv(
        other_ids, index=False
    )
    garbage = tmp_path / "broken.parquet"
    garbage.write_bytes(b"PAR1 this is not parquet")
    dup = tmp_path / "dup.csv"
    ids = [*validation.index[:3], validation.index[0]]
    pd.DataFrame({"id": ids, "prediction": [0.1, 0.2, 0.3, 0.4]}).to_csv(dup, index=False)
    cases = {
        no_id: "has no 'id' column",
        other_ids: "cover 0 of the",
        garbage: "cannot read the predictions file",
        tmp_path / "missing.csv": "not found",
        dup: "repeats id",
    }
    for path, message in cases.items():
        code, _, stderr = cli("report", path, "--data", data, "--out", tmp_path / "r.html")
        assert code != 0, path
        assert message in stderr, stderr
        assert "Traceback" not in stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "r.html").exists()
    # 90% of the ids overall, but one whole era missing: refused, naming the column and the era
    last_era = validation["era"].max()
    holes = tmp_path / "holes.csv"
    kept = validation[validation["era"] != last_era]
    pd.DataFrame({"id": kept.index, "prediction": np.linspace(0, 1, len(kept))}).to_csv(holes, index=False)
    code, _, stderr = cli("report", holes, "--data", data, "--out", tmp_path / "r.html")
    assert code != 0
    assert "column 'prediction' has no prediction for" in stderr and f"era {last_era}" in stderr
    code, _, stderr = cli("report", other_ids, "--data", tmp_path / "nope.parquet")
    assert code != 0 and "nope.parquet" in stderr


def test_cli_report_finds_the_projects_validation_data_and_meta_model(
    cli, project_dir: Path, synthetic_dir: Path, two_models: Path
):
    folder = project_dir / "data" / "v5.3"
    folder.mkdir(parents=True)
    for name in (
        "validation.parquet",
        "features.json",
        "meta_model.parquet",
        "validation_benchmark_models.parquet",
    ):
        shutil.copy(synthetic_dir / name, folder / name)
    code, stdout, stderr = cli("report", two_models, "--features", "none")
    assert code == 0, stderr
    assert "MMC against numerai_meta_model" in stdout and "BMC against v53_lgbm_ender20" in stdout
    assert "FNC" not in stdout  # --features none
    assert (project_dir / "report.html").is_file()
