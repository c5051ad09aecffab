"""Numbers in the docs are the ones in the committed JSON (issue 18).

A Verdicts table in docs/<subsystem>.md that follows the comment `<!-- verdicts: docs/results/FILE.json -->` must
name claims of that document and repeat its cells exactly as `tailorkit reproduce --verdicts FILE.json` prints them
(value, target, interval, seeds won, verdict); only the diagnosis column is written by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tailorkit.core.report import VERDICT_HEADER, verdict_cells, verdicts_markdown

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- verdicts: (docs/results/[\w.-]+\.json) -->")


def _tables() -> list[tuple[Path, str, list[list[str]]]]:
    """(doc, JSON path, table rows as cell lists) for every marked table in docs/."""
    found = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        lines = doc.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = MARKER.search(line)
            if not m:
                continue
            rows = []
            for row in lines[i + 1 :]:
                if not row.strip() and not rows:
                    continue
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
            found.append((doc, m.group(1), rows))
    return found


TABLES = _tables()


def test_some_docs_carry_marked_verdicts_tables() -> None:
    assert len(TABLES) >= 2, [str(t[0]) for t in TABLES]


@pytest.mark.parametrize("doc,json_path,rows", TABLES, ids=[f"{t[0].name}:{Path(t[1]).name}" for t in TABLES])
def test_verdicts_table_equals_committed_json(doc: Path, json_path: str, rows: list[list[str]]) -> None:
    source = ROOT / json_path
    assert source.is_file(), f"{doc.name}: {json_path} does not exist"
    claims = {f"`{c['id']}`": c for c in json.loads(source.read_text(encoding="utf-8"))["claims"]}
    header, body = rows[0], rows[2:]
    assert tuple(header[: len(VERDICT_HEADER)]) == VERDICT_HEADER, f"{doc.name}: header {header}"
    assert body, f"{doc.name}: empty Verdicts table for {json_path}"
    for cells in body:
        assert cells[0] in claims, f"{doc.name}: {cells[0]} is not a claim of {json_path}"
        expected = verdict_cells(claims[cells[0]])
        assert cells[: len(expected)] == expected, f"{doc.name}: {cells[0]} says {cells[:6]}, {json_path} {expected}"


def test_cells_follow_the_document() -> None:
    claim = {
        "id": "a-beats-b",
        "value": 0.5,
        "target": 0.0,
        "holds": False,
        "verdict": "undecided",
        "ci_low": -0.25,
        "ci_high": 1.25,
        "n": 5,
        "wins": 3,
    }
    assert verdict_cells(claim) == ["`a-beats-b`", "0.5", "0", "[-0.25, +1.25]", "3/5", "undecided"]
    plain = {"id": "c", "value": 2.0, "target": 1.0, "holds": True}  # an old document: no interval, no verdict
    assert verdict_cells(plain) == ["`c`", "2", "1", "", "", "holds"]
    table = verdicts_markdown({"claims": [claim, plain]}).splitlines()
    assert len(table) == 4 and table[2].startswith("| `a-beats-b` | 0.5 |")
