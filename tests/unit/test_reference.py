"""docs/api.md and docs/objects.md: generated from the declarations, kept current by this test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokensvc import reference
from tokensvc.objects.console import ConsoleConnection

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return reference.rendered()


def test_generated_docs_are_current(generated):
    outdated = reference.stale(DOCS, generated)
    assert not outdated, (
        f"out of date with the routes, bodies and objects: docs/{', docs/'.join(outdated)}; "
        f"run `.venv/bin/{reference.REGENERATE}` and commit the result"
    )


def test_a_changed_declaration_makes_the_docs_stale(tmp_path, generated):
    for name, text in generated.items():
        reference.write(tmp_path, name, text)
    assert reference.stale(tmp_path, generated) == []
    changed = dict(generated, **{"api.md": generated["api.md"] + "\n### `GET /v1/new`\n"})
    assert reference.stale(tmp_path, changed) == ["api.md"]


def test_regenerating_keeps_the_hand_written_preface(tmp_path, capsys):
    preface = "# API\n\nWritten by hand.\n\n"
    (tmp_path / "api.md").write_text(f"{preface}{reference.MARKER}\n\nan old route table\n")
    assert reference.main(["--check", str(tmp_path)]) == 1
    assert "api.md is out of date" in capsys.readouterr().out
    assert reference.main([str(tmp_path)]) == 0
    text = (tmp_path / "api.md").read_text()
    assert text.startswith(preface + reference.MARKER + "\n\n## Routes\n")
    assert "an old route table" not in text
    assert (tmp_path / "objects.md").read_text().startswith("# objects.md\n")
    assert reference.main(["--check", str(tmp_path)]) == 0


def test_each_field_is_documented_since_the_version_that_added_it():
    since = reference.since_versions(ConsoleConnection)
    assert {name for name, version in since.items() if version != "1.0"} == {
        "console_type",
        "connected",
        "lease",
    }
    assert (since["console_type"], since["connected"], since["lease"]) == ("1.1", "1.1", "1.2")


def test_openapi_names_each_routes_roles_and_database_only_routes():
    paths = reference.openapi_document()["paths"]
    assert paths["/v1/leases"]["get"]["security"] == [{"serviceKey": ["admin"]}]
    assert paths["/v1/tokens/connect"]["post"]["x-database-only"] is True
    assert "x-database-only" not in paths["/v1/tokens/validate"]["post"]
    assert "security" not in paths["/healthz"]["get"]


def test_outside_a_checkout_it_says_so_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        reference.main([str(tmp_path / "docs")])
    assert stopped.value.code == 2
    assert "run this in a checkout of tokensvc" in capsys.readouterr().err
