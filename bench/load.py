"""wrk runs and their results: one JSON line printed by the Lua scripts' done()."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

LUA = Path(__file__).parent / "lua"


@dataclasses.dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    statuses: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclasses.dataclass(frozen=True)
class Load:
    """How hard to push: the issue's setting is 16 connections over 2 wrk threads."""

    duration: int
    connections: int = 16
    threads: int = 2


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (bench/run does it)")
    return found


def run_wrk(load: Load, url: str, script: str, *args: str) -> Result:
    command = [
        wrk_binary(),
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.duration}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA / script),
        url,
        "--",
        *args,
    ]
    env = os.environ | {"BENCH_WRK_THREADS": str(load.threads)}  # (for common.offset)
    finished = subprocess.run(  # noqa: S603 (our own arguments)
        command, capture_output=True, text=True, timeout=load.duration + 60, check=False, env=env
    )
    if finished.returncode != 0:
        raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stderr.strip()}")
    raw = json.loads(finished.stdout.strip().splitlines()[-1])
    return Result(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        non_2xx=raw["non_2xx"],
        socket_errors=raw["socket_errors"],
        statuses=raw["statuses"],
    )
