"""``numerflow sim serve`` as a real process, driven by numerapi and by ``numerflow sim advance|status``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numerapi
import numerapi.base_api
import pytest
from sim_support import SMALL, make_world, napi


def _serve(state: Path, world: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "numerflow.cli.main", "sim", "serve", "--port", "0", "--state", str(state)]
    cmd += ["--data", str(world), "--seed", str(SMALL["seed"]), "--start", SMALL["start"], *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"serving on (http://\S+/)", line)
        if found:
            return proc, found.group(1)
    proc.kill()
    raise AssertionError("sim serve did not start:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_serve_advance_status_and_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    world = make_world(tmp_path / "world")
    state = tmp_path / "state"
    flags = ["--fault-upload-fail", "0.5", "--corr-multiplier", "1.0", "--models", "alpha, beta"]
    proc, url = _serve(state, world, *flags, "--public-id", "CLIPUB", "--secret-key", "CLISEC")
    try:
        monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL", url)
        api = napi("CLIPUB", "CLISEC")
        assert api.get_current_round() == 1000
        assert sorted(api.get_models()) == ["alpha", "beta"]
        code, out, _ = cli("sim", "status", "--url", url)
        assert code == 0 and "upload_fail_rate=0.5" in out and "1000" in out

        code, out, _ = cli("sim", "advance", "--close-round", "--url", url)
        assert code == 0
        with pytest.raises(ValueError, match="Current round not open"):
            api.get_current_round()
        # --start is Monday 08:00: Thursday 08:00 is between rounds (Tue and Wed closed at 14:00)
        code, out, _ = cli("sim", "advance", "3", "--url", url)
        assert code == 0 and api.check_round_open() is False
        code, out, _ = cli("sim", "status", "--url", url)
        assert code == 0 and "2026-12-03T08:" in out  # the calendar time, pinned by --start
        code, out, _ = cli("sim", "advance", str(5.5 / 24), "--url", url)  # Thursday 13:30
        assert code == 0
        opened = api.get_current_round()
        assert opened == 1003
        code, out, _ = cli("sim", "advance", "--open-round", "--url", url)
        assert code == 0
        after = api.get_current_round()
        assert after == opened + 1
        rounds = {r["number"]: r for r in api.list_rounds()}
        assert {c["displayName"]: c["defaultMultiplier"] for c in rounds[1000]["roundScoreConfigs"]}[
            "canon_corr"
        ] == 1.0
    finally:
        _stop(proc)
    assert proc.returncode is not None

    proc, url = _serve(state, world)  # same state folder: the clock and the rounds carry on
    try:
        monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL", url)
        assert napi("CLIPUB", "CLISEC").get_current_round() == after
    finally:
        _stop(proc)


def test_cli_refuses_bad_input(tmp_path: Path, cli) -> None:
    code, _, err = cli("sim", "status", "--url", "http://127.0.0.1:9/")
    assert code == 1 and "cannot reach the simulator" in err
    code, _, err = cli("sim", "advance", "--url", "http://127.0.0.1:9/", "--", "-1")
    assert code != 0 and "only moves forward" in err
    code, _, err = cli("sim", "faults", "http_5xx_rate", "--url", "http://127.0.0.1:9/")
    assert code == 1 and "NAME=VALUE" in err
    code, _, err = cli("sim", "serve", "--state", str(tmp_path / "s"), "--clock-speed", "0")
    assert code == 2 and "clock speed must be > 0" in err
    code, _, err = cli("sim", "serve", "--state", str(tmp_path / "s2"), "--start", "next tuesday")
    assert code == 2 and "clock start 'next tuesday': not an ISO-8601 time" in err
    assert not (tmp_path / "s2").exists()


def test_serve_refuses_an_unknown_payout_rule_in_one_line(tmp_path: Path, cli) -> None:
    code, _, err = cli("sim", "serve", "--state", tmp_path / "state", "--payout-rule", "classic")
    assert code != 0
    assert "unknown payout rule 'classic'; known: current, 2024, signals, crypto" in err
    assert "Traceback" not in err and not (tmp_path / "state").exists()
