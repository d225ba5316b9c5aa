"""`numerflow data synth|check|load-info` from the command line, good and bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd


def test_synth_then_check_then_load_info(project_dir: Path, cli) -> None:
    out_dir = project_dir / "syn"
    code, out, err = cli(
        "data", "synth", "--out", out_dir, "--eras", 20, "--rows-per-era", 50, "--features", 12
    )
    assert code == 0, err
    assert "wrote 11 files" in out
    assert pd.read_parquet(out_dir / "train.parquet")["era"].nunique() == 20 - 5 - 4
    code, out, err = cli("data", "check", out_dir)
    assert code == 0, err
    assert "ok: 0 errors" in out and "train.parquet" in out
    code, out, err = cli(
        "data", "load-info", out_dir / "train.parquet", "--eras", "0002..0009", "--stride", 2
    )
    assert code == 0, err
    assert "200 rows x 12 features (int8" in out.replace("\n", " ") and "4 eras 0002..0008" in out.replace(
        "\n", " "
    )


def test_check_defaults_to_the_configured_version_folder(project_dir: Path, cli, synthetic_dir: Path) -> None:
    shutil.copytree(synthetic_dir, project_dir / "data" / "v5.3")
    code, out, err = cli("data", "check")
    assert code == 0, err
    assert "v5.3" in out.replace("\n", "")


def test_check_fails_with_exit_1_and_one_line(project_dir: Path, cli, synthetic_dir: Path) -> None:
    bad = project_dir / "bad"
    shutil.copytree(synthetic_dir, bad)
    (bad / "train.parquet").write_bytes(b"PAR1 nope")
    code, out, err = cli("data", "check", bad)
    assert code == 1
    assert "failed: 1 errors" in out
    assert err.strip().startswith("error:") and "train.parquet: not a readable parquet file" in err
    assert "Traceback" not in err + out


def test_bad_inputs_are_one_line_errors(project_dir: Path, cli, synthetic_dir: Path) -> None:
    code, _, err = cli("data", "load-info", project_dir / "missing.parquet")
    assert code == 1 and "missing.parquet: file not found" in err
    code, _, err = cli("data", "load-info", synthetic_dir / "train.parquet", "--features", "nope")
    assert code == 1 and "no feature set 'nope'" in err
    code, _, err = cli("data", "load-info", synthetic_dir / "train.parquet", "--eras", "0010..")
    assert code == 1 and "--eras '0010..': give FIRST..LAST" in err
    code, _, err = cli("data", "load-info", synthetic_dir / "train.parquet", "--eras", "0030..0020")
    assert code == 1 and "era range 0030..0020 is empty" in err
    code, _, err = cli("data", "check", project_dir / "nowhere")
    assert code == 1 and "no such file or folder" in err
    code, _, err = cli("data", "synth", "--out", project_dir / "x", "--eras", 5, "--validation-eras", 4)
    assert code == 1 and "at least one train" in err
    assert "Traceback" not in err
    code, _, err = cli("data", "synth", "--out", project_dir / "x", "--signal", -1)
    assert code == 2 and "--signal" in err


def test_synth_signal_is_saved_for_the_world_and_the_simulator(project_dir: Path, cli) -> None:
    import json

    from numerflow.data.synthetic import DEFAULT_SIGNAL, SyntheticWorld

    for name, extra, expected in (("weak", [], DEFAULT_SIGNAL), ("strong", ["--signal", 1.5], 1.5)):
        out_dir = project_dir / name
        code, _, err = cli(
            "data", "synth", "--out", out_dir, "--eras", 12, "--rows-per-era", 20, "--features", 8, *extra
        )
        assert code == 0, err
        assert json.loads((out_dir / "synthetic_spec.json").read_text())["signal"] == expected
        assert SyntheticWorld.from_dir(out_dir).spec.signal == expected
