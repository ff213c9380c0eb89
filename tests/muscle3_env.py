"""A second environment with MUSCLE3 0.11, for the tests that run this package inside it.

MUSCLE3 0.10 (the ``test`` extra) needs ymmsl 0.17 and MUSCLE3 0.11 needs
ymmsl 0.18, so the two cannot share the project's ``.venv``. The 0.11 tests
therefore run their MUSCLE3 work as subprocesses with the Python of
``<repo>/.venv-muscle3-0.11``, which holds ``muscle3==0.11.0`` and this
package installed editable from the working tree (so it always runs the code
under test, never a stale copy).

The environment is built once and reused: a stamp file records what it was
built from (the MUSCLE3 version, ``pyproject.toml``, the checkout's path and
the Python version), and a changed stamp rebuilds it. A file lock makes
concurrent test sessions (or CI and a developer) wait for one build instead
of racing on the same directory.

Building needs the package index. Without it the 0.11 tests are skipped with
the reason, unless ``MUSCLE_CATALOG_REQUIRE_MUSCLE3_011=1`` (set by
``.ci/run``) turns that into a failure, so that CI can never pass without them.

Run ``python tests/muscle3_env.py`` to build it ahead of the tests (``.ci/run``
does, so that the build time shows up as its own step).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: The MUSCLE3 0.11 release the second environment holds.
MUSCLE3_011 = "0.11.0"
#: Where it lives (ignored by git through ``.venv-muscle3-*``).
VENV_011 = REPO / ".venv-muscle3-0.11"
#: Set to 1 to fail instead of skipping when the environment cannot be built.
REQUIRE_ENV = "MUSCLE_CATALOG_REQUIRE_MUSCLE3_011"

_STAMP = "catalog-test-env.json"
_INSTALL_TIMEOUT = 1200


class Muscle3EnvError(RuntimeError):
    """The MUSCLE3 0.11 environment could not be built or does not work."""


def venv_python(venv: Path) -> Path:
    """The Python interpreter of a virtual environment."""
    return venv / "bin" / "python"


def _wanted_stamp() -> dict[str, str]:
    """What the environment is built from; it is rebuilt when any of this changes.

    The checkout's path is part of it because the editable install points
    there: a moved or copied checkout must not run another checkout's code.
    """
    pyproject = (REPO / "pyproject.toml").read_bytes()
    return {
        "muscle3": MUSCLE3_011,
        "pyproject_sha256": hashlib.sha256(pyproject).hexdigest(),
        "checkout": str(REPO),
        "python": ".".join(map(str, sys.version_info[:2])),
    }


def _is_current(venv: Path) -> bool:
    try:
        stamp = json.loads((venv / _STAMP).read_text())
    except (OSError, ValueError):
        return False
    return bool(stamp == _wanted_stamp() and venv_python(venv).exists())


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Muscle3EnvError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise Muscle3EnvError(f"{what} failed (exit code {done.returncode}):\n{tail}")


def build_muscle3_011_env(venv: Path = VENV_011) -> Path:
    """Build the MUSCLE3 0.11 environment unless it is already current; return its Python.

    Args:
        venv: Where to build it.

    Returns:
        The environment's ``python``.

    Raises:
        Muscle3EnvError: Creating the environment, installing into it, or the
            check that it imports ``libmuscle`` 0.11 and ``catalog.muscle3`` failed.
    """
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.with_name(venv.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        python = venv_python(venv)
        if _is_current(venv):
            return python
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)], f"creating {venv}")
        _run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             f"muscle3=={MUSCLE3_011}", "-e", str(REPO)],
            f"installing muscle3=={MUSCLE3_011} and this package into {venv}",
        )  # fmt: skip
        check = (
            "import libmuscle, catalog.muscle3.instance; "
            f"assert libmuscle.__version__ == {MUSCLE3_011!r}, libmuscle.__version__"
        )
        _run([str(python), "-c", check], f"checking the environment {venv}")
        (venv / _STAMP).write_text(json.dumps(_wanted_stamp()))
        return python


#: This session's outcome of :func:`build_muscle3_011_env`, so that it runs once per session.
_SESSION: dict[str, Path | Muscle3EnvError] = {}


def muscle3_011_python_or_skip() -> Path:
    """The 0.11 environment's Python, building it if needed; skip (or fail in CI) without it.

    The outcome is kept for the rest of the test session, a failure included,
    so that a missing package index costs one attempt, not one per test.
    """
    if "outcome" not in _SESSION:
        try:
            _SESSION["outcome"] = build_muscle3_011_env()
        except Muscle3EnvError as exc:
            _SESSION["outcome"] = exc
    outcome = _SESSION["outcome"]
    if isinstance(outcome, Path):
        return outcome
    reason = f"no MUSCLE3 {MUSCLE3_011} environment at {VENV_011}: {outcome}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def muscle3_011_python() -> Path:
    """Session fixture: the Python of the MUSCLE3 0.11 environment (see the module docs)."""
    return muscle3_011_python_or_skip()


if __name__ == "__main__":
    started = time.monotonic()
    try:
        built = build_muscle3_011_env()
    except Muscle3EnvError as error:
        sys.exit(f"Error: {error}")
    print(f"MUSCLE3 {MUSCLE3_011} environment ready: {built} ({time.monotonic() - started:.1f} s)")
