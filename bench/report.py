"""Medians over the rounds, the ratios the issue asks for, the table and the chart."""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

from bench.load import Result


@dataclasses.dataclass(frozen=True)
class Summary:
    server: str
    key: str
    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    rounds: int
    failures: int  # non-2xx answers and socket errors over all rounds
    note: str = ""


def summarize(server: str, key: str, label: str, results: list[Result], note: str = "") -> Summary:
    failures = sum(r.non_2xx + r.socket_errors for r in results)
    return Summary(
        server,
        key,
        label,
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        len(results),
        failures,
        note,
    )


@dataclasses.dataclass(frozen=True)
class Target:
    what: str
    measured: float
    goal: float
    at_least: bool = True

    @property
    def met(self) -> bool:
        return self.measured >= self.goal if self.at_least else self.measured <= self.goal

    def line(self) -> str:
        relation = ">=" if self.at_least else "<="
        verdict = "met" if self.met else "MISSED"
        return f"{self.what}: {self.measured:.2f} ({relation} {self.goal:g}) {verdict}"


def targets(rows: dict[str, Summary], extra: dict[str, float]) -> list[Target]:
    """The issue's targets, on the server ``tokensvc serve`` uses."""
    found = []
    if {"b", "c", "d", "db"} <= rows.keys():
        b, c, d, db = (rows[k] for k in ("b", "c", "d", "db"))
        found += [
            Target("c/b requests/s", c.rps / b.rps, 0.9),
            Target("c/DB floor requests/s", c.rps / db.rps, 1.3),
            Target("d/DB floor requests/s", d.rps / db.rps, 0.7),
            Target("p99 c/b", c.p99_ms / b.p99_ms, 1.25, at_least=False),
        ]
    if "reg" in rows:
        found.append(Target("register requests/s", rows["reg"].rps, 1000))
    if "purge_p99_ratio" in extra:
        found.append(Target("p99 during purge / baseline", extra["purge_p99_ratio"], 2, False))
    if "validate_p99_idle_sockets_ms" in extra:
        held = extra["validate_p99_idle_sockets_ms"]
        found.append(Target("validate p99 ms, 400 idle sockets held", held, 500, False))
    if "revocation_lag_p99_ms" in extra:
        lag = extra["revocation_lag_p99_ms"]
        found.append(Target("revocation lag p99 ms (revoke to 4010)", lag, 1000, False))
    if "redis_bytes_per_token" in extra:
        found.append(Target("Redis bytes per token", extra["redis_bytes_per_token"], 512, False))
    return found


def table(summaries: list[Summary]) -> str:
    """Markdown: one line per row and server, with c/b and c/d of that server."""
    lines = [
        "| server | row | | requests/s | p50 ms | p99 ms | c/b | c/d | failures | note |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    by_server: dict[str, dict[str, Summary]] = {}
    for s in summaries:
        by_server.setdefault(s.server, {})[s.key] = s
    for s in summaries:
        mine = by_server[s.server]
        cb = cd = ""
        if s.key == "c" and {"b", "d"} <= mine.keys():
            cb, cd = f"{s.rps / mine['b'].rps:.2f}", f"{s.rps / mine['d'].rps:.2f}"
        lines.append(
            f"| {s.server} | {s.key} | {s.label} | {s.rps:,.0f} | {s.p50_ms:.2f} | "
            f"{s.p99_ms:.2f} | {cb} | {cd} | {s.failures} | {s.note} |"
        )
    return "\n".join(lines)


def write(directory: Path, summaries: list[Summary], extra: dict[str, Any], text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    raw = {"rows": [dataclasses.asdict(s) for s in summaries], "extra": extra}
    (directory / "results.json").write_text(json.dumps(raw, indent=2) + "\n")
    (directory / "report.md").write_text(text + "\n")
    chart(summaries, directory / "benchmarks.png")


def chart(summaries: list[Summary], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{s.server[:4]} {s.key}" for s in summaries]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 0.38 * len(names) + 1.5))
    positions = range(len(names))
    colors = ["tab:blue" if s.server == "granian" else "tab:orange" for s in summaries]
    left.barh(positions, [s.rps for s in summaries], color=colors)
    left.set_title("requests/s (median of rounds)")
    right.barh(positions, [s.p99_ms for s in summaries], color=colors)
    right.set_title("p99 latency, ms (median of rounds)")
    for axis in (left, right):
        axis.set_yticks(list(positions), names)
        axis.invert_yaxis()
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
