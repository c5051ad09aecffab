"""The docs agree with the code (issue 23): docs/architecture.md's layout, file table, subsystem shape and bench list;
links to docs sections resolve; no source or doc cites a document outside the repository.

Everything is read statically (text and `ast`), so this file imports neither torch nor any subsystem.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from pathlib import Path

from tailorkit.core.bench import SUBSYSTEMS

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "tailorkit"
DOCS = ROOT / "docs"
ARCH = (DOCS / "architecture.md").read_text(encoding="utf-8")

# Work on other branches (issue 23) that this test already expects; delete an entry when that branch is merged.
# An entry that is no longer needed fails the test, so none stays behind.
CITATIONS_ALLOWED = {
    "tests/test_docs.py": "this file",  # the pattern below
}
METHODS_EXCEPTIONS = {
    # Two method families, two registries (TUNERS, STRATEGIES); docs/architecture.md says so. Not a branch: permanent.
    "active": "documented",
}


def _packages() -> dict[str, list[str]]:
    """Package path relative to tailorkit/ ("hoi/methods/") -> its modules (without __init__.py) and subpackages."""
    out = {}
    for init in sorted(PKG.rglob("__init__.py")):
        folder = init.parent
        if folder == PKG:
            continue
        modules = sorted(p.name for p in folder.glob("*.py") if p.name != "__init__.py")
        subpackages = sorted(f"{d.name}/" for d in folder.iterdir() if (d / "__init__.py").is_file())
        out[f"{folder.relative_to(PKG).as_posix()}/"] = modules + subpackages
    return out


def _section(text: str, heading: str) -> str:
    """The text under a markdown heading line (exact), up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next(
        (i for i in range(start, len(lines)) if re.match(rf"#{{1,{level}}} ", lines[i])),
        len(lines),
    )
    return "\n".join(lines[start:end])


def test_layout_lists_every_package_folder() -> None:
    block = _section(ARCH, "## Layout").split("```")[1]
    listed = set(re.findall(r"^  ([a-z_]+)/ ", block, flags=re.M))
    top = {name.rstrip("/") for name in _packages() if name.count("/") == 1}
    assert listed == top, f"layout lists {sorted(listed - top)} that do not exist, misses {sorted(top - listed)}"


def test_file_table_equals_the_files() -> None:
    table = _section(ARCH, "### Files of each package")
    documented = {}
    for row in re.findall(r"^\| `([a-z_/]+)` \| (.*) \|$", table, flags=re.M):
        documented[row[0]] = re.findall(r"`([^`]+)`", row[1])
    actual = _packages()
    wrong = {name: files for name, files in actual.items() if sorted(documented.get(name, [])) != sorted(files)}
    extra = sorted(set(documented) - set(actual))
    fix = "\n".join(f"| `{n}` | " + " ".join(f"`{f}`" for f in files) + " |" for n, files in sorted(wrong.items()))
    assert not wrong and not extra, (
        f"docs/architecture.md file table is stale; rows to write:\n{fix}\nto delete: {extra}"
    )


def _shape_statement() -> tuple[list[str], list[str], dict[str, list[str]]]:
    text = _section(ARCH, "### The shape of a subsystem")
    subsystems = re.search(r"The ten subsystems: ([a-z, ]+)", text)
    has = re.search(r"Every subsystem has: (.*)\.", text)
    assert subsystems and has, "the shape statement has lost its parseable sentences"
    missing = {m[0]: re.findall(r"[a-z]+", m[1]) for m in re.findall(r"`([a-z_./]+)` is missing in: ([a-z, ]+)", text)}
    return [s.strip() for s in subsystems.group(1).split(",")], re.findall(r"`([^`]+)`", has.group(1)), missing


def test_shape_statement_holds() -> None:
    subsystems, everywhere, missing = _shape_statement()
    assert subsystems == [s for s in SUBSYSTEMS if s != "selfcheck"]
    assert set(missing) == {"config.py", "methods/"}
    for name in subsystems:
        for part in everywhere:
            assert (PKG / name / part).is_file(), f"{name} has no {part}, but docs/architecture.md says every one has"
    for part, lacking in missing.items():
        actual = [s for s in subsystems if not (PKG / s / part.rstrip("/")).exists()]
        assert lacking == actual, f"docs/architecture.md: `{part}` is missing in {actual}, not {lacking}"


def test_bench_list_equals_registered_benches() -> None:
    sentence = re.search(r"registered bench \(today: ([^;]+);", ARCH)
    assert sentence, "the bench list sentence in docs/architecture.md has lost its form"
    documented = re.findall(r"`([a-z_]+)`", sentence.group(1))
    registered = []
    for bench in sorted(PKG.glob("*/bench.py")):
        for node in ast.walk(ast.parse(bench.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register_bench":
                registered.append(ast.literal_eval(node.args[0]))
    assert documented == list(SUBSYSTEMS)
    assert sorted(registered) == sorted(SUBSYSTEMS)


def test_methods_base_holds_the_registry() -> None:
    seen = set()
    for folder in sorted(PKG.glob("*/methods/")):
        name = folder.parent.name
        base = folder / "base.py"
        tree = ast.parse(base.read_text(encoding="utf-8") if base.is_file() else "")
        assigned = {
            t.id
            for node in tree.body
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Name)
        }
        doc = ast.get_docstring(tree) or ""
        if name in METHODS_EXCEPTIONS:
            seen.add(name)
            if METHODS_EXCEPTIONS[name] != "documented":
                assert "METHODS" not in assigned, f"{name}/methods/base.py now has METHODS: delete its exception"
            continue
        assert "METHODS" in assigned, f"{name}/methods/base.py defines no registry named METHODS"
        assert "METHODS" in doc, f"{name}/methods/base.py: the module docstring does not document METHODS"
    assert seen == set(METHODS_EXCEPTIONS), (
        f"exceptions for subsystems without methods/: {seen ^ set(METHODS_EXCEPTIONS)}"
    )


# ---- citations and links ----------------------------------------------------------------------------------------

OUTSIDE = re.compile(r"\bnotes (section |§)?[0-9]|shared/notes|\.\./shared|/work/|notes' |\(notes|\[notes")


def _sources() -> list[Path]:
    return sorted([*PKG.rglob("*.py"), *DOCS.glob("*.md"), *(ROOT / "tests").rglob("*.py")])


def _allowed(path: Path) -> str | None:
    rel = path.relative_to(ROOT).as_posix()
    return next((branch for prefix, branch in CITATIONS_ALLOWED.items() if rel.startswith(prefix)), None)


def test_no_citation_of_documents_outside_the_repository() -> None:
    bad, still_needed = [], set()
    for path in _sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                if _allowed(path):
                    still_needed.add(_allowed(path))
                else:
                    bad.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bad, "cite a section of docs/<subsystem>.md instead:\n" + "\n".join(bad)
    stale = sorted(set(CITATIONS_ALLOWED.values()) - still_needed)
    assert not stale, f"CITATIONS_ALLOWED entries of branches {stale} are no longer needed: delete them"


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = unicodedata.normalize("NFKC", heading).strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not re.match(r"#{1,6} ", line):
            continue
        title = line.lstrip("#").strip()
        explicit = re.search(r"\{#([\w-]+)\}\s*$", title)
        if explicit:
            found.add(explicit.group(1))
            title = title[: explicit.start()].strip()
        slug = github_slug(title)
        found.add(slug if slug not in counts else f"{slug}-{counts[slug]}")
        counts[slug] = counts.get(slug, 0) + 1
    return found


def test_github_slug() -> None:
    assert github_slug("Tasks, metrics, Delta_m") == "tasks-metrics-delta_m"
    assert github_slug("Why there is no `methods/` registry") == "why-there-is-no-methods-registry"
    assert anchors("## A\n## A\n## Benches {#bench-json}\n") == {"a", "a-1", "benches", "bench-json"}


def test_links_to_docs_sections_resolve() -> None:
    cache = {p.name: anchors(p.read_text(encoding="utf-8")) for p in DOCS.glob("*.md")}
    bad = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        links = re.findall(r"docs/([\w-]+\.md)#([\w-]+)", text)
        if path.suffix == ".md":
            links += [(path.name, a) for a in re.findall(r"\]\(#([\w-]+)\)", text)]
            links += re.findall(r"\]\(([\w-]+\.md)#([\w-]+)\)", text)
        for doc, anchor in links:
            if anchor not in cache.get(doc, set()):
                bad.append(f"{path.relative_to(ROOT)}: docs/{doc}#{anchor}")
    assert not bad, "links to missing docs sections:\n" + "\n".join(bad)


def test_cited_sections_are_not_empty() -> None:
    # A section the source cites instead of the notes must carry the detail, not only a heading.
    for path in _sources():
        for doc, anchor in set(re.findall(r"docs/([\w-]+\.md)#([\w-]+)", path.read_text(encoding="utf-8"))):
            text = (DOCS / doc).read_text(encoding="utf-8")
            headings = [line for line in text.splitlines() if re.match(r"#{1,6} ", line)]
            match = [h for h in headings if anchor in anchors(h)]
            if not match:
                continue  # test_links_to_docs_sections_resolve reports it
            body = [line for line in _section(text, match[0]).splitlines() if line.strip()]
            assert len(body) >= 3, f"docs/{doc}#{anchor} (cited by {path.relative_to(ROOT)}) is nearly empty"


MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|<img[^>]*\bsrc=[\"']([^\"']+)[\"']")


def relative_links(markdown: str) -> list[str]:
    """Targets of markdown links and images that are files, not web addresses or anchors (code blocks skipped)."""
    out, in_code = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        line = re.sub(r"`[^`]*`", "", line)  # inline code is not a link
        for groups in MD_LINK.findall(line):
            target = next(g for g in groups if g)
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
                continue  # https:, mailto:, an anchor of the same page
            out.append(target.split("#", 1)[0])
    return out


def test_relative_links() -> None:
    assert relative_links("[a](pages/x.md#s) ![p](img.png) [w](https://x.org) [s](#top) `[c](no.md)`") == [
        "pages/x.md",
        "img.png",
    ]
    assert relative_links('<img src="a b.png" alt="x">\n```\n[in code](nope.md)\n```') == ["a b.png"]


def test_docs_link_only_to_files_in_the_repository() -> None:
    """README.md and docs/*.md: every relative link or picture names a file or folder that a clone contains."""
    bad = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in relative_links(page.read_text(encoding="utf-8")):
            resolved = (page.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                bad.append(f"{page.relative_to(ROOT)}: {target}")
    assert not bad, "links to files outside the repository or missing:\n" + "\n".join(bad)
