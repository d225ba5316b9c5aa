"""A hostile user at the command line: every bad input is one clear error line and a non-zero exit.

Each test is a case that used to end in a Python traceback (or an unclear message) and what the user
sees now. Nothing half-written may be left behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_support import CALENDAR_START


def _one_clear_line(code: int, err: str, *needles: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def project(project_dir: Path, synthetic_dir: Path, cli) -> Path:
    """A project whose data folder holds the shared synthetic dataset as v5.3, with a ridge model."""
    import shutil

    data = project_dir / "data" / "v5.3"
    shutil.copytree(synthetic_dir, data)
    (project_dir / "numerflow.toml").write_text(
        '[numerai]\ndata_version = "v5.3"\n\n'
        '[models.ridge]\nalgorithm = "ridge"\nparams = { alpha = 1.0 }\nfeatures = "small"\n'
    )
    return project_dir


@pytest.fixture
def trained(project: Path, cli) -> Path:
    code, _, err = cli("train", "ridge")
    assert code == 0, err
    return project


def test_synth_into_a_file_or_an_impossible_folder(project_dir: Path, cli) -> None:
    (project_dir / "taken").write_text("x")
    code, _, err = cli("data", "synth", "--out", str(project_dir / "taken"), "--eras", "6")
    _one_clear_line(code, err, "taken", "is a file, not a folder")
    assert (project_dir / "taken").read_text() == "x"

    code, _, err = cli("data", "synth", "--out", "/proc/numerflow-qa/x", "--eras", "6")
    _one_clear_line(code, err, "/proc/numerflow-qa", "cannot create this folder")


@pytest.mark.parametrize("content", [b"", b"not parquet at all", b'{"feature_sets": {}}'])
def test_predict_on_a_corrupt_or_wrong_type_file(trained: Path, cli, content: bytes) -> None:
    bad = trained / "bad.parquet"
    bad.write_bytes(content)
    code, _, err = cli("predict", "ridge", "--data", str(bad), "-o", "p.csv")
    _one_clear_line(code, err, "bad.parquet", "not a readable parquet file")
    assert not (trained / "p.csv").exists()


def test_predict_out_to_a_folder_or_under_a_file(trained: Path, cli) -> None:
    code, _, err = cli("predict", "ridge", "--data", "validation", "-o", str(trained))
    _one_clear_line(code, err, "is a folder; give a file path")
    assert not list(trained.glob(".*.part"))
    assert not list(trained.parent.glob(f".{trained.name}.*"))

    code, _, err = cli("predict", "ridge", "--data", "validation", "-o", "numerflow.toml/p.csv")
    _one_clear_line(code, err, "numerflow.toml", "is a file, not a folder")


def test_report_out_where_it_cannot_be_written(trained: Path, cli) -> None:
    code, _, err = cli("predict", "ridge", "--data", "validation", "-o", "v.csv")
    assert code == 0, err
    code, _, err = cli("report", "v.csv", "--features", "none", "-o", "/proc/numerflow-qa/r.html")
    _one_clear_line(code, err, "/proc/numerflow-qa", "cannot create this folder")
    code, _, err = cli("report", "v.csv", "--features", "none", "-o", str(trained / "data"))
    _one_clear_line(code, err, "is a folder")


@pytest.mark.parametrize(
    ("url", "needles"),
    [
        ("sqlite:////proc/numerflow-qa/db.sqlite", ("/proc/numerflow-qa", "cannot create the folder")),
        ("sqlite:///numerflow.toml/db.sqlite", ("numerflow.toml", "cannot create the folder")),
        ("sqlite:///numerflow.toml", ("migration failed (file is not a database)",)),
        ("mysql://someone@somewhere/db", ("mysql://someone@somewhere/db", "not installed")),
    ],
)
def test_database_url_that_cannot_work(
    project: Path, cli, monkeypatch: pytest.MonkeyPatch, url: str, needles: tuple[str, ...]
) -> None:
    before = (project / "numerflow.toml").read_bytes()
    monkeypatch.setenv("NUMERFLOW_DATABASE_URL", url)
    code, _, err = cli("models", "list")
    _one_clear_line(code, err, *needles)
    assert (project / "numerflow.toml").read_bytes() == before


@pytest.mark.parametrize("url", ["notaurl", "ftp://example.com", "http://[::1", "http://host:port/"])
def test_api_url_that_is_not_http_is_refused_before_any_call(
    project: Path, cli, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("NUMERFLOW_API_URL", url)
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "SIMPUBLICID")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SIMSECRETKEY")
    code, _, err = cli("stake", "show")
    _one_clear_line(code, err, "numerai.api_url", "must be an http(s) URL", repr(url))
    assert "attempts" not in err  # refused up front, not retried as a connection error


def test_api_host_that_does_not_resolve_says_so(
    project_dir: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project_dir / "numerflow.toml").write_text(
        '[numerai]\napi_url = "http://numerflow-qa.invalid/"\ntimeout_s = 2.0\nretries = 1\nbackoff_s = 0.0\n'
    )
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "SIMPUBLICID")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SIMSECRETKEY")
    code, _, err = cli("stake", "show")
    _one_clear_line(code, err, "cannot resolve the host of http://numerflow-qa.invalid/", "numerai.api_url")
    assert "HTTPConnectionPool" not in err


def test_sim_serve_with_a_bad_state_or_data_folder_leaves_no_state(
    project_dir: Path, synthetic_dir: Path, cli
) -> None:
    state = project_dir / "simstate"
    not_a_folder = synthetic_dir / "train.parquet"
    code, _, err = cli("sim", "serve", "--port", "0", "--state", str(state), "--data", str(not_a_folder))
    _one_clear_line(code, err, "train.parquet", "not a dataset folder", "numerflow data synth")
    assert not state.exists()  # a later start with a good --data is not stuck with this one

    code, _, err = cli("sim", "serve", "--port", "0", "--state", "/proc/numerflow-qa/sim")
    _one_clear_line(code, err, "/proc/numerflow-qa", "cannot create this folder")

    code, _, err = cli("sim", "serve", "--port", "0", "--state", str(not_a_folder))
    _one_clear_line(code, err, "train.parquet", "is a file, not a folder")


@pytest.mark.parametrize("days", ["nan", "inf", "1e9"])
def test_sim_advance_by_an_impossible_number_of_days(project_dir: Path, cli, days: str) -> None:
    code, _, err = cli("sim", "advance", days, "--url", "http://127.0.0.1:1/")
    _one_clear_line(code, err, "cannot advance by", "only moves forward, 0 to 3650 days")


def test_simulator_api_refuses_to_advance_by_a_billion_days(tmp_path: Path, synthetic_dir: Path) -> None:
    from numerflow.errors import ConfigError
    from numerflow.simulator.engine import TournamentEngine

    engine = TournamentEngine(
        tmp_path / "state", data_dir=synthetic_dir, auto_rounds=False, start=CALENDAR_START
    )
    try:
        before = engine.status()
        with pytest.raises(ConfigError, match="only moves forward, 0 to 3650 days"):
            engine.advance(1e9)
        with pytest.raises(ConfigError, match="only moves forward, 0 to 3650 days"):
            engine.advance(float("nan"))
        after = engine.status()
        assert (after["rounds"], after["latest_round"]) == (before["rounds"], before["latest_round"])
        assert after["sim_time"][:10] == before["sim_time"][:10]  # the clock did not jump
    finally:
        engine.close()


def test_demo_in_a_folder_that_cannot_be_made(project_dir: Path, cli) -> None:
    code, _, err = cli("demo", "--dir", "/proc/numerflow-qa/demo")
    _one_clear_line(code, err, "/proc/numerflow-qa", "cannot create this folder")


def test_serve_on_a_port_or_host_it_cannot_listen_on(project: Path, cli) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = cli("serve", "--host", "127.0.0.1", "--port", str(port))
        _one_clear_line(code, err, f"cannot listen on 127.0.0.1:{port}", "Address already in use")

    code, _, err = cli("serve", "--host", "numerflow-qa.invalid", "--port", "0")
    _one_clear_line(code, err, "cannot listen on numerflow-qa.invalid:0")

    code, _, err = cli("serve", "--port", "99999")
    assert code == 2 and "Traceback" not in err and "65535" in err


def test_cv_with_zero_folds_says_folds_not_embargo(project: Path, cli) -> None:
    code, _, err = cli("cv", "ridge", "--folds", "0")
    _one_clear_line(code, err, "cv.folds must be at least 2 (got 0)")


@pytest.mark.parametrize("timeout", ["nan", "-1", "inf"])
def test_tune_with_a_timeout_that_is_not_a_time(project: Path, cli, timeout: str) -> None:
    code, _, err = cli("tune", "ridge", "-n", "1", "--timeout", timeout)
    _one_clear_line(code, err, "tune timeout must be a number of seconds above 0")
    # said before any scheduler is asked
    code, _, err = cli("tune", "ridge", "-n", "1", "--timeout", timeout, "--dask", "tcp://127.0.0.1:1")
    _one_clear_line(code, err, "tune timeout must be a number of seconds above 0")


def test_tune_whose_trials_fail_shows_the_reason_without_a_traceback(project: Path, cli) -> None:
    with (project / "numerflow.toml").open("a") as fh:
        fh.write("cv = { embargo_eras = 1000 }\n")
    code, _, err = cli("tune", "ridge", "-n", "1")
    _one_clear_line(code, err, "no training eras left after an embargo of 1000 eras")


def test_promote_refuses_a_version_whose_files_are_gone_or_changed(trained: Path, cli) -> None:
    import shutil

    code, _, err = cli("train", "ridge")
    assert code == 0, err
    code, _, err = cli("models", "promote", "ridge@2")
    assert code == 0, err
    (trained / "artifacts" / "ridge" / "1" / "manifest.json").write_text("{}")
    code, _, err = cli("models", "promote", "ridge@1")
    _one_clear_line(code, err, "manifest.json", "does not match")
    shutil.rmtree(trained / "artifacts" / "ridge" / "1")
    code, _, err = cli("models", "promote", "ridge@1")
    _one_clear_line(code, err, "ridge@1 not found")
    code, out, _ = cli("models", "show", "ridge@2")
    assert code == 0 and "stage=champion" in out  # the good champion kept its stage


def test_synth_far_bigger_than_the_disk_is_refused_up_front(project_dir: Path, cli) -> None:
    out = project_dir / "huge"
    code, _, err = cli(
        "data", "synth", "--out", str(out), "--eras", "1000000000", "--rows-per-era", "1000000"
    )
    _one_clear_line(code, err, "GiB on disk, more than this machine's", "use fewer eras, rows or features")
    assert not out.exists()


def test_sim_first_start_that_fails_does_not_pin_its_settings(tmp_path: Path) -> None:
    from numerflow.errors import DataError
    from numerflow.simulator.engine import TournamentEngine

    state = tmp_path / "state"
    with pytest.raises(DataError, match="more than this machine's"):
        TournamentEngine(state, rows_per_era=100_000_000, n_eras=100_000, auto_rounds=False)
    engine = TournamentEngine(state, rows_per_era=20, n_eras=8, n_features=5, auto_rounds=False)
    try:
        assert (engine.rows_per_era, engine.n_eras, engine.n_features) == (20, 8, 5)
    finally:
        engine.close()


def test_data_list_remote_of_a_version_the_server_lacks(
    project_dir: Path, synthetic_dir: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from numerflow.simulator.server import start_simulator

    with start_simulator(
        project_dir / "sim",
        data_dir=synthetic_dir,
        rows_per_era=200,
        n_features=40,
        n_eras=60,
        start=CALENDAR_START,
    ) as sim:
        (project_dir / "numerflow.toml").write_text(
            f'[numerai]\napi_url = "{sim.url}"\nretries = 1\nbackoff_s = 0.0\n'
        )
        code, _, err = cli("data", "list", "--remote", "--version", "v99")
        _one_clear_line(code, err, "data version 'v99' is not offered by the server", "v5.3")


def test_report_on_a_predictions_file_with_a_word_or_no_rows(trained: Path, cli) -> None:
    code, _, err = cli("predict", "ridge", "--data", "validation", "-o", "v.csv")
    assert code == 0, err
    lines = (trained / "v.csv").read_text().splitlines()
    first_id = lines[1].split(",")[0]
    lines[1] = f"{first_id},abc"
    (trained / "word.csv").write_text("\n".join(lines) + "\n")
    code, _, err = cli("report", "word.csv", "--features", "none", "-o", "r.html")
    _one_clear_line(code, err, "word.csv", "'abc'", first_id, "not a number")

    (trained / "empty.csv").write_text("id,prediction\n")
    code, _, err = cli("report", "empty.csv", "--features", "none", "-o", "r.html")
    _one_clear_line(code, err, "empty.csv", "no rows after the header")
    assert not (trained / "r.html").exists()


def test_predict_live_after_a_download_uses_the_newest_round(trained: Path, cli) -> None:
    data = trained / "data" / "v5.3"
    for n in (7, 12):
        (data / "rounds" / str(n)).mkdir(parents=True)
    (data / "live.parquet").rename(data / "rounds" / "12" / "live.parquet")
    (data / "rounds" / "7" / "live.parquet").write_bytes(b"an old, broken round")
    code, out, err = cli("predict", "ridge", "-o", "p.csv")  # --data live by default
    assert code == 0, err
    assert "wrote" in out and len((trained / "p.csv").read_text().splitlines()) > 1


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("id,prediction\n", "no rows after the header"),
        ("id,prediction\na,0.5\nb,1.7\nc,0.2\n", "outside [0, 1]"),
        ("id,prediction\na,0.5\na,0.6\n", "id a appears 2 times"),
    ],
)
def test_submit_refuses_a_bad_local_file_before_keys_or_network(
    project: Path, cli, monkeypatch: pytest.MonkeyPatch, content: str, needle: str
) -> None:
    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    monkeypatch.delenv("NUMERAI_SECRET_KEY", raising=False)
    monkeypatch.setenv("NUMERFLOW_API_URL", "http://numerflow-qa.invalid/")
    (project / "bad.csv").write_text(content)
    code, _, err = cli("submit", "some_model", "bad.csv")
    _one_clear_line(code, err, "bad.csv", needle)
    assert "key" not in err.lower() and "resolve" not in err


def test_a_bad_api_url_in_the_environment_names_the_variable_not_the_file(
    project: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMERFLOW_API_URL", "notaurl")
    code, _, err = cli("stake", "show")
    _one_clear_line(code, err, "environment variable NUMERFLOW_API_URL", "must be an http(s) URL", "notaurl")
    assert "numerflow.toml" not in err


@pytest.mark.parametrize(
    ("data_dir", "needles"),
    [
        ("/proc/numerflow-qa/data", ("cannot create the data folder /proc/numerflow-qa/data",)),
        ("numerflow.toml", ("numerflow.toml is a file, not a folder",)),
    ],
)
def test_a_bad_data_dir_in_the_environment_names_the_variable_not_the_database(
    project: Path, cli, monkeypatch: pytest.MonkeyPatch, data_dir: str, needles: tuple[str, ...]
) -> None:
    monkeypatch.delenv("NUMERFLOW_DATABASE_URL", raising=False)
    monkeypatch.setenv("NUMERFLOW_DATA_DIR", data_dir)
    code, _, err = cli("models", "list")
    _one_clear_line(code, err, "environment variable NUMERFLOW_DATA_DIR", *needles)
    assert "database url" not in err


def test_load_info_era_range_is_compared_as_numbers(project: Path, cli) -> None:
    train = str(project / "data" / "v5.3" / "train.parquet")
    code, _, err = cli("data", "load-info", train, "--eras", "9999..10000")
    _one_clear_line(code, err, "no eras between 9999 and 10000")
    assert "comes after" not in err
    code, _, err = cli("data", "load-info", train, "--eras", "10000..9999")
    _one_clear_line(code, err, "the first era comes after the last")
    code, out, err = cli("data", "load-info", train, "--eras", "2..5")  # labels are 0001.., not padded here
    assert code == 0, err
    assert "4 eras 0002..0005" in out


@pytest.mark.parametrize("args", [("-5",), ("-5", "--yes"), ("--yes", "-0.5")])
def test_stake_set_to_a_negative_amount_says_stakes_cannot_be_negative(
    project: Path, cli, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    monkeypatch.delenv("NUMERAI_SECRET_KEY", raising=False)
    monkeypatch.setenv("NUMERFLOW_API_URL", "http://numerflow-qa.invalid/")
    code, _, err = cli("stake", "set", "some_model", *args)
    _one_clear_line(code, err, "is negative", "can't be negative")
    assert "No such option" not in err and "resolve" not in err  # refused before any call


def test_stake_amounts_print_as_plain_decimals(
    project_dir: Path, synthetic_dir: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from numerflow.simulator.server import start_simulator

    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "SIMPUBLICID")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SIMSECRETKEY")
    with start_simulator(
        project_dir / "sim",
        data_dir=synthetic_dir,
        rows_per_era=200,
        n_features=40,
        n_eras=60,
        start=CALENDAR_START,
    ) as sim:
        (project_dir / "numerflow.toml").write_text(
            f'[numerai]\napi_url = "{sim.url}"\nretries = 1\nbackoff_s = 0.0\n'
        )
        code, _, err = cli("stake", "set", "sim_model_1", "1e30", "--yes")
        _one_clear_line(code, err, "1000000000000000000000000000000 NMR")
        assert "E+" not in err


@pytest.mark.parametrize(
    "command", [("predict", "--out", "p.csv"), ("models", "show"), ("models", "promote")]
)
@pytest.mark.parametrize("version", ["99999999999999999999", "2147483648", "0", "9" * 5000])
def test_a_version_too_large_for_the_database_is_one_line(
    trained: Path, cli, command: tuple[str, ...], version: str
) -> None:
    args = [command[0], *command[1:2]] if command[0] == "models" else ["predict"]
    rest = list(command[1:]) if command[0] == "predict" else []
    code, _, err = cli(*args, f"ridge@{version}", *rest)
    _one_clear_line(code, err, "there is no version", "numerflow models list ridge")
    assert not (trained / "p.csv").exists()


@pytest.mark.parametrize("typed", ["１２", "١٢", "ridge@１"])
def test_numbers_in_non_ascii_digits_are_refused(trained: Path, cli, typed: str) -> None:
    if "@" in typed:
        code, _, err = cli("models", "show", typed)
        _one_clear_line(code, err, "is not a model reference")
    else:
        code, _, err = cli("sim", "advance", typed)
        _one_clear_line(code, err, repr(typed), "non-ASCII digits")
        code, _, err = cli("stake", "set", "some_model", typed, "--yes")
        _one_clear_line(code, err, "non-ASCII digits")


def test_impossible_stake_amounts_are_refused_before_anything_is_stored(
    project_dir: Path, synthetic_dir: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from decimal import Decimal

    from sqlalchemy import func, select

    from numerflow.config import load_settings
    from numerflow.errors import StakeError
    from numerflow.simulator.server import start_simulator
    from numerflow.store import open_database, session_scope
    from numerflow.store.tables.tournament import StakeChange
    from numerflow.tournament.client import NumeraiClient
    from numerflow.tournament.stakes import set_stake

    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "SIMPUBLICID")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SIMSECRETKEY")
    with start_simulator(
        project_dir / "sim", data_dir=synthetic_dir, rows_per_era=200, n_features=40, n_eras=60
    ) as sim:
        config = project_dir / "numerflow.toml"
        config.write_text(f'[numerai]\napi_url = "{sim.url}"\nretries = 1\nbackoff_s = 0.0\n')
        for amount, needle in [
            ("1e999", "more than all the NMR there is"),
            ("11000000.5", "more than all the NMR there is"),
            ("inf", "not a number"),
            ("NaN", "not a number"),
            ("1e99999", "not a number"),
            ("0.0000000000000000001", "more than 18 decimals"),
        ]:
            code, _, err = cli("stake", "set", "sim_model_1", amount, "--yes")
            _one_clear_line(code, err, needle)
        settings = load_settings(config)
        engine = open_database(settings.database_url)
        client = NumeraiClient.from_settings(settings)
        # the library entry point checks again (a float too)
        for amount in (Decimal("Infinity"), Decimal("1e999"), Decimal("-1"), float("inf"), float("nan")):
            with pytest.raises(StakeError):
                set_stake(settings, engine, client, "sim_model_1", amount, confirmed=True)
        with session_scope(engine) as s:
            assert s.scalar(select(func.count()).select_from(StakeChange)) == 0
        assert client.stake_value("sim_model_1") == 10
