"""Every code block of README.md and docs/*.md, run as a new user would run it.

In a copy of the checkout, with HOME in a temporary directory and nothing of tokensvc
configured: ``sh`` blocks run with bash in the copy's top directory, one after the
other in the order of the pages; a block after ``<!-- docs-test: serves URL -->``
keeps running in the background once URL answers 200 (until the end); ``python``
blocks run with the venv the first block made; ``json`` blocks must parse. ``text``
and ``console`` blocks are the ones not meant to be run (the page says why); any
other fence fails the test, so no block is skipped silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fresh import ROOT, background, copy_checkout, user_env, wait_for
from tests.support import MariaDB, free_port

PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))]
# Indented fences too (a block inside a list item).
FENCE = re.compile(r"^( *)```([\w-]*)\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)
SERVES = re.compile(r"<!-- docs-test: serves (\S+) -->\n$")
NOT_RUN = ("text", "console")
# The first block installs tokensvc into a new venv before it serves.
START_TIMEOUT = 240


@dataclasses.dataclass(frozen=True)
class Block:
    page: str
    line: int
    language: str
    code: str
    serves: str | None

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.language or 'no language'})"


def blocks_of(page: str) -> list[Block]:
    text = (ROOT / page).read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        marker = SERVES.search(before)
        serves = marker.group(1) if marker else None
        line = before.count("\n") + 1
        code = textwrap.dedent(match.group(3))
        found.append(Block(page, line, match.group(2), code, serves))
    return found


# The docs' fixed ports, and the MariaDB database and Redis they name: each run uses
# its own (free ports, a database of its own, the xdist worker's Redis), so test runs
# side by side never meet. Every other character of a block runs as written.
DOC_PORTS = ("8080", "8081", "8000", "8001")
DOC_DATABASE = ("127.0.0.1:3306/tokensvc", "EXISTS tokensvc ")
DOC_REDIS = "redis://127.0.0.1:6379/0"


def localized(block: Block, ports: dict[str, int], database: str, redis_url: str) -> Block:
    """``block`` with this run's ports, database and Redis in place of the docs' own."""
    code, serves = block.code, block.serves
    for documented, port in ports.items():
        for form in (":{}", "--port {}"):
            code = code.replace(form.format(documented), form.format(port))
            serves = serves and serves.replace(form.format(documented), form.format(port))
    code = code.replace(DOC_DATABASE[0], f"127.0.0.1:3306/{database}")
    code = code.replace(DOC_DATABASE[1], f"EXISTS {database} ").replace(DOC_REDIS, redis_url)
    return dataclasses.replace(block, code=code, serves=serves)


def run_block(block: Block, checkout: Path, env: dict[str, str], log: Path) -> None:
    if block.language == "json":
        json.loads(block.code)
        return
    command = {
        "sh": ["bash", "-e", "-o", "pipefail", "-c", block.code],
        "python": [str(checkout / ".venv/bin/python"), "-c", block.code],
    }[block.language]
    done = subprocess.run(
        command, cwd=checkout, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    with open(log, "a") as output:
        output.write(f"== {block}\n{done.stdout}{done.stderr}")
    assert done.returncode == 0, f"{block} failed:\n{block.code}\n{done.stdout}{done.stderr}"


@pytest.fixture
def database(mariadb: MariaDB) -> Iterator[str]:
    """A database name of this run's own for the MariaDB block (dropped afterwards)."""
    url = mariadb.create("docs")
    mariadb.drop(url)  # the block creates it, as a user would
    yield url.rsplit("/", 1)[1]
    mariadb.drop(url)


def test_every_code_block_runs(tmp_path, database, redis_url):
    blocks = [block for page in PAGES for block in blocks_of(page)]
    unmarked = [str(b) for b in blocks if b.language not in (*NOT_RUN, "sh", "python", "json")]
    assert not unmarked, f"blocks neither runnable here nor marked text/console: {unmarked}"
    ports = {documented: free_port() for documented in DOC_PORTS}
    blocks = [localized(block, ports, database, redis_url) for block in blocks]
    checkout = copy_checkout(tmp_path / "checkout")
    # `tokensvc serve` as the first block runs it: its default address is the docs' 8080.
    env = user_env(tmp_path / "home") | {"TOKENSVC_BIND": f"127.0.0.1:{ports['8080']}"}
    ran, not_run = [], []
    with contextlib.ExitStack() as servers:
        for number, block in enumerate(blocks):
            if block.language in NOT_RUN:
                not_run.append(str(block))
                continue
            if block.serves is not None:
                log = tmp_path / f"served-{number}.log"
                command = ["bash", "-e", "-c", block.code]
                process = servers.enter_context(background(command, checkout, env, log))
                wait_for(block.serves, process, log, START_TIMEOUT)
            else:
                run_block(block, checkout, env, tmp_path / "blocks.log")
            ran.append(str(block))
    print("ran:", *ran, "not run (text/console):", *not_run, sep="\n  ")
    # The first run's files went to the state directory, none into the checkout.
    assert (tmp_path / "home/.local/state/tokensvc/tokensvc-admin.key").exists()
    assert not list(checkout.glob("*.db")) and not list(checkout.glob("tokensvc-admin*"))
    assert "README.md:11 (sh)" in ran and any(b.startswith("README.md") for b in not_run)
