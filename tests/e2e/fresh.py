"""A fresh checkout of this tree and processes run in it, as a new user would run them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def copy_checkout(destination: Path) -> Path:
    """The files git tracks or would track (new ones too), copied as a clone has them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if source.is_file():  # (a file deleted in the work tree is still listed as cached)
            target = destination / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def user_env(home: Path) -> dict[str, str]:
    """This environment without anything tokensvc or a venv set, and ``home`` as HOME."""
    dropped = ("XDG_STATE_HOME", "VIRTUAL_ENV", "PYTHONPATH", "PROMETHEUS_MULTIPROC_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSVC_")}
    env = {k: v for k, v in env.items() if k not in dropped}
    # pip's configuration (the index it may use) lives under the real user's home.
    user_config = Path("~/.config/pip/pip.conf").expanduser()
    if user_config.exists():
        env.setdefault("PIP_CONFIG_FILE", str(user_config))
    home.mkdir(parents=True, exist_ok=True)
    return env | {"HOME": str(home)}


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until ``url`` answers 200; the log in the failure if the process ends or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"ended before {url} answered:\n{log.read_text()}"
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer 200 in {timeout} s:\n{log.read_text()}")


@contextlib.contextmanager
def background(
    command: list[str], cwd: Path, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A process group of its own (a shell and what it starts), ended by that group's id."""
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=output, start_new_session=True
        )
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
