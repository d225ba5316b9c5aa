"""Run a Numerai Model Upload pickle in a child process, the way numerai-predict does, under limits.

This is the only place a pickle is ever loaded, and only in a child process: ``numerflow export`` uses
it to check an exported predict function before writing it, and the simulator's compute uses it to run
the uploaded pickles at each round open. The parent side (:func:`run_pickle`) imports nothing but the
standard library; the child side is this same file run as a script (``python -I sandbox.py ...``), so the
child never imports numerflow: by default it even refuses to (a predict function that still needs
numerflow fails here exactly as it would on Numerai's servers).

The child mirrors numerai-predict's ``predict.py``: ``pd.read_pickle`` (with its three load messages),
arity from ``inspect.signature`` (1, or 2 with the benchmark models), the call, then its checks (None,
not exactly a DataFrame, empty, any NaN, first column outside [0, 1]); ``strict`` adds what numerflow
checks before an export (a ``prediction`` column and exactly the input's ids). The output is written with
``to_csv()`` including the index, as numerai-predict posts it.

Limits: an address-space limit (``RLIMIT_AS``, Numerai's 4 GB) that the child sets on itself before it
imports or loads anything (no ``preexec_fn``: the simulator calling this is multi-threaded), a wall-clock
timeout (Numerai's 10 minutes) after which the child's whole process group is killed, one thread for the
numeric libraries (Numerai's 1 CPU), a clean environment and a temporary working folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MEMORY_LIMIT_BYTES = 4 * 1024**3  # Numerai's 4 GB
TIMEOUT_S = 600.0  # Numerai's 10 minutes
_TAIL = 4000  # characters of the child's stderr kept for the owner
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class SandboxResult:
    """How one run went: ``ok``; ``message`` is one line for the user; ``log`` the child's stderr tail."""

    ok: bool
    message: str
    log: str
    returncode: int | None
    output: Path | None


def run_pickle(
    pickle_path: Path | str,
    live_path: Path | str,
    output_csv: Path | str,
    *,
    benchmarks_path: Path | str | None = None,
    python: str | None = None,
    timeout_s: float = TIMEOUT_S,
    memory_bytes: int | None = MEMORY_LIMIT_BYTES,
    strict: bool = False,
    block_numerflow: bool = True,
) -> SandboxResult:
    """Load ``pickle_path`` in a fresh child process, call it on ``live_path`` and write its predictions
    to ``output_csv``. Never raises for what the pickle does: the outcome is in the result."""
    output_csv = Path(output_csv)
    args = [
        python or sys.executable,
        "-I",  # no PYTHONPATH, no user site, no script folder or cwd on sys.path
        str(Path(__file__).resolve()),
        "--model",
        str(Path(pickle_path).resolve()),
        "--dataset",
        str(Path(live_path).resolve()),
        "--output",
        str(output_csv.resolve()),
    ]
    if benchmarks_path is not None:
        args += ["--benchmarks", str(Path(benchmarks_path).resolve())]
    if strict:
        args.append("--strict")
    if block_numerflow:
        args.append("--block-numerflow")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    env.update(dict.fromkeys(_THREAD_VARS, "1"))
    if memory_bytes is not None:
        args += ["--memory-bytes", str(int(memory_bytes))]
    with tempfile.TemporaryDirectory(prefix="numerflow-sandbox-") as cwd:
        env["HOME"] = cwd
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: a timeout ends whatever it started too
        )
        try:
            _, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            _, stderr = proc.communicate()
            return SandboxResult(
                False, f"timed out after {timeout_s:g} s (the limit)", stderr[-_TAIL:], None, None
            )
        finally:
            if proc.poll() is None:  # interrupted (Ctrl-C): leave no child behind
                _kill_group(proc)
    log = stderr[-_TAIL:]
    if proc.returncode == 0 and output_csv.is_file():
        return SandboxResult(True, "ok", log, 0, output_csv)
    return SandboxResult(False, _failure_line(proc.returncode, log), log, proc.returncode, None)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _failure_line(returncode: int, log: str) -> str:
    if returncode == -11:
        return "Segmentation fault! Ensure python and library versions match our environment."
    if returncode < 0:
        return f"the predict process was killed by signal {-returncode}"
    for line in reversed(log.strip().splitlines()):
        if line.startswith("numerflow-sandbox: "):
            return line.removeprefix("numerflow-sandbox: ")
    if "MemoryError" in log:
        return "ran out of memory (the limit is the address-space limit of the sandbox)"
    last = log.strip().splitlines()[-1] if log.strip() else f"exit status {returncode}"
    return last


# ------------------------------------------------------------------------------------------- the child
def _fail(message: str) -> None:
    sys.stderr.write(f"numerflow-sandbox: {message}\n")
    sys.exit(1)


def _block_numerflow() -> None:
    """Make ``import numerflow`` fail in this process, as it would in Numerai's image."""
    import importlib.abc

    class _Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
            if fullname == "numerflow" or fullname.startswith("numerflow."):
                raise ModuleNotFoundError(f"No module named '{fullname}'", name=fullname)
            return None

    sys.meta_path.insert(0, _Blocker())
    sys.path[:] = [p for p in sys.path if not (Path(p) / "numerflow").is_dir()]


def _child(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--benchmarks")
    parser.add_argument("--output", required=True)
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--block-numerflow", action="store_true")
    parser.add_argument("--memory-bytes", type=int)
    opts = parser.parse_args(argv)
    if opts.memory_bytes:  # before anything is imported or loaded
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (opts.memory_bytes, opts.memory_bytes))
    if opts.block_numerflow:
        _block_numerflow()

    import inspect
    import pickle
    import traceback

    import pandas as pd

    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        model = pd.read_pickle(opts.model)
    except pickle.UnpicklingError:
        traceback.print_exc()
        _fail("Invalid pickle")
    except TypeError:
        traceback.print_exc()
        _fail(f"Pickle incompatible with python {py}")
    except ModuleNotFoundError as exc:
        traceback.print_exc()
        _fail(f"Import error reading pickle: {exc}")
    except Exception as exc:
        traceback.print_exc()
        _fail(f"cannot load the pickle: {type(exc).__name__}: {exc}")
    if not callable(model):
        _fail(f"the pickle holds a {type(model).__name__}, not a predict function")
    n_args = len(inspect.signature(model).parameters)
    live = pd.read_parquet(opts.dataset)
    try:
        if n_args == 1:
            result = model(live)
        elif n_args == 2:
            if not opts.benchmarks:
                _fail("predict takes live_benchmark_models, but there is no benchmark file for this round")
            result = model(live, pd.read_parquet(opts.benchmarks))
        else:
            _fail(
                f"predict must take 1 or 2 arguments (live_features[, live_benchmark_models]), not {n_args}"
            )
    except SystemExit:
        raise
    except BaseException as exc:
        traceback.print_exc()
        _fail(f"predict raised {type(exc).__name__}: {exc}")
    # numerai-predict's checks
    if result is None:
        _fail("predict returned None; it must return a DataFrame")
    if type(result) is not pd.DataFrame:
        _fail(f"predict returned a {type(result).__name__}; it must return a pandas DataFrame")
    if result.empty:
        _fail("predict returned an empty DataFrame")
    if result.isna().any().any():
        _fail(f"predictions contain {int(result.isna().sum().sum())} NaN values")
    first = result.iloc[:, 0]
    if not ((first >= 0) & (first <= 1)).all():
        _fail(f"predictions must be in [0, 1]; got values from {first.min():g} to {first.max():g}")
    if opts.strict:
        if "prediction" not in result.columns:
            _fail(f"predict returned columns {list(result.columns)[:5]}; it needs a 'prediction' column")
        missing = live.index.difference(result.index)
        if len(missing):
            _fail(f"predictions miss {len(missing)} of the {len(live)} live ids (e.g. {missing[0]!r})")
        extra = result.index.difference(live.index)
        if len(extra) or result.index.has_duplicates:
            _fail("predictions have ids that are not in the live data, or the same id twice")
    tmp = opts.output + ".partial"
    result.to_csv(tmp)
    os.replace(tmp, opts.output)


if __name__ == "__main__":
    _child(sys.argv[1:])
