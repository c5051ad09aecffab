"""HTML reports: `reproduce` (bench tables, claims, one plot per bench) and `demo` (one section per subsystem).

Plain HTML with PNG pictures beside it, so a report opens anywhere without a server or a JavaScript bundle.
matplotlib runs on the Agg backend: no display is needed.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailorkit.core.results import write_json_atomic, write_text_atomic

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.ok{color:#0a7a2f}.no{color:#b00020}.un{color:#8a6d00}
img{max-width:100%;border:1px solid #ddd}code{background:#f6f6f6;padding:0 .2em}
"""


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return html.escape(str(value))


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def bench_plot(doc: dict[str, Any], path: Path) -> Path | None:
    """One bar chart per bench: each metric (panel) across methods. None when there is nothing numeric to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = sorted({m for row in doc["rows"] for m in row["metrics"]})
    if not metrics:
        return None
    metrics = metrics[:12]
    cols = min(4, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.ravel()[len(metrics) :]:
        ax.set_visible(False)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        names = [row["method"] for row in doc["rows"] if metric in row["metrics"]]
        values = [row["metrics"][metric] for row in doc["rows"] if metric in row["metrics"]]
        ax.bar(range(len(values)), values, color="#4477aa")
        ax.set_xticks(range(len(values)), names, rotation=40, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("method", fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
    fig.suptitle(f"{doc['subsystem']} ({doc['mode']})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bench_section(doc: dict[str, Any], out_dir: Path) -> str:
    name = doc["subsystem"]
    metrics = sorted({m for row in doc["rows"] for m in row["metrics"]})
    rows = [[r["method"], *[r["metrics"].get(m, "") for m in metrics], r["seconds"]] for r in doc["rows"]]
    parts = [
        f"<h2 id='{html.escape(name)}'>{html.escape(name)}</h2>",
        f"<p>mode <code>{doc['mode']}</code>, seed {doc['seed']}, {doc['seconds']:.1f} s wall, "
        f"{doc['cpu_seconds']:.1f} s CPU, data: {html.escape(doc['data']['name'])} "
        f"({html.escape(doc['data']['source'])})</p>",
        html_table(["method", *metrics, "seconds"], rows),
    ]
    if doc["claims"]:
        parts.append(claims_table(doc))
        if doc.get("evidence", {}).get("indicative", True):
            parts.append("<p><small>One seed: these verdicts are indicative, not evidence.</small></p>")
    if doc.get("curve"):
        curve = curve_plot(doc, out_dir / f"{name}-curve.png")
        parts.append(f"<img src='{curve.name}' alt='{html.escape(name)} gap against budget'>")
    plot = bench_plot(doc, out_dir / f"{name}.png")
    if plot is not None:
        parts.append(f"<img src='{plot.name}' alt='{html.escape(name)} metrics'>")
    return "\n".join(parts)


def claims_table(doc: dict[str, Any]) -> str:
    """Every claim with its value, interval, n, seeds won and verdict (documents without intervals: plain)."""
    rows = []
    for c in doc["claims"]:
        verdict = c.get("verdict") or ("holds" if c["holds"] else "fails")
        low, high = c.get("ci_low"), c.get("ci_high")
        interval = "" if low is None or high is None else f"[{low:+.4g}, {high:+.4g}]"
        wins = "" if c.get("wins") is None else f"{c['wins']}/{c.get('n', 1)}"
        rows.append([c["id"], c["text"], c["value"], c["target"], interval, wins, verdict])
    table = html_table(["claim", "text", "value", "target", "95 % interval", "seeds won", "verdict"], rows)
    for verdict, css in (("holds", "ok"), ("fails", "no"), ("undecided", "un")):
        table = table.replace(f"<td>{verdict}</td>", f"<td class='{css}'>{verdict}</td>")
    return table


def curve_plot(doc: dict[str, Any], path: Path) -> Path:
    """The decisive gaps against training budget, each point with its 95 % interval over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    claims = list(dict.fromkeys(r["claim"] for r in doc["curve"]))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for k, claim in enumerate(claims):
        pts = [r for r in doc["curve"] if r["claim"] == claim and r["value"] is not None]
        x = [r["budget"] * (1 + 0.04 * (k - (len(claims) - 1) / 2)) for r in pts]  # dodge overlapping bars
        y = [r["value"] for r in pts]
        low = [r["value"] - (r["ci_low"] if r["ci_low"] is not None else r["value"]) for r in pts]
        high = [(r["ci_high"] if r["ci_high"] is not None else r["value"]) - r["value"] for r in pts]
        ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=claim)
        if pts:
            ax.axhline(pts[0]["target"], color="grey", lw=0.6, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training budget (x the bench's steps)")
    ax.set_ylabel("gap (claim value) with 95 % interval")
    ax.set_title(f"{doc['subsystem']}: does the gap close with training? ({len(doc.get('seeds', [0]))} seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_reproduce_report(docs: Sequence[dict[str, Any]], out_dir: str | Path, failures: dict[str, str]) -> Path:
    """DIR/index.html (tables, claims, plots) and DIR/results.json (the bench documents, keyed by subsystem)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = [
        [
            d["subsystem"],
            d["mode"],
            len(d["rows"]),
            f"{sum(c['holds'] for c in d['claims'])}/{len(d['claims'])}"
            + (" (indicative)" if d.get("evidence", {}).get("indicative", True) else f" ({len(d['seeds'])} seeds)"),
            d["seconds"],
        ]
        for d in docs
    ]
    body = [html_table(["bench", "mode", "rows", "claims holding", "seconds"], summary)]
    if failures:
        body.append("<h2>Benches that failed to run</h2>")
        body.append(html_table(["bench", "error"], sorted(failures.items())))
    body.extend(bench_section(d, out) for d in docs)
    write_json_atomic(out / "results.json", {"benches": {d["subsystem"]: d for d in docs}, "failures": failures})
    return write_text_atomic(out / "index.html", _page("tailorkit reproduce", "\n".join(body)))


@dataclass
class DemoSection:
    """One subsystem's part of the demo tour."""

    title: str
    text: str
    image: Path | None = None
    table_header: list[str] = field(default_factory=list)
    table_rows: list[list[Any]] = field(default_factory=list)
    seconds: float = 0.0
    own_data: str = ""  # the command that runs this part on the user's own files (core.demo.OWN_DATA)
    docs: str = ""  # the page that says what those files must look like (docs/<subsystem>.md)


def write_demo_report(sections: Sequence[DemoSection], out_dir: str | Path, failures: dict[str, str]) -> Path:
    out = Path(out_dir)
    body = []
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.text)}</p>")
        if section.table_rows:
            body.append(html_table(section.table_header, section.table_rows))
        if section.image is not None:
            body.append(f"<img src='{html.escape(section.image.name)}' alt='{html.escape(section.title)}'>")
        if section.own_data:
            where = f" (inputs: {html.escape(section.docs)} in the repository)" if section.docs else ""
            body.append(
                f"<p class='own-data'>On your own files{where}:<br><code>{html.escape(section.own_data)}</code></p>"
            )
        body.append(f"<p><small>{section.seconds:.1f} s</small></p>")
    if failures:
        body.append("<h2>Parts that failed</h2>" + html_table(["part", "error"], sorted(failures.items())))
    return write_text_atomic(out / "index.html", _page("tailorkit demo", "\n".join(body)))


VERDICT_HEADER = ("claim", "value", "target", "95 % interval", "seeds won", "verdict")


def _g(x: Any) -> str:
    return "" if x is None else f"{x:.4g}"


def verdict_cells(claim: dict[str, Any]) -> list[str]:
    """A claim's cells in a docs Verdicts table, formatted the one way that tests/test_docs.py checks against."""
    verdict = claim.get("verdict") or ("holds" if claim["holds"] else "fails")
    low, high = claim.get("ci_low"), claim.get("ci_high")
    interval = "" if low is None or high is None or low == high else f"[{low:+.4g}, {high:+.4g}]"
    wins = "" if claim.get("wins") is None else f"{claim['wins']}/{claim.get('n', 1)}"
    return [f"`{claim['id']}`", _g(claim["value"]), _g(claim["target"]), interval, wins, verdict]


def verdicts_markdown(doc: dict[str, Any]) -> str:
    """The Verdicts table of a bench document in Markdown, with an empty diagnosis column for the docs to fill.

    `tailorkit reproduce --verdicts FILE.json` prints it; a docs table preceded by the comment
    `<!-- verdicts: docs/results/FILE.json -->` must keep these cells equal to the committed JSON (a test checks).
    """
    lines = ["| " + " | ".join((*VERDICT_HEADER, "diagnosis")) + " |", "|" + "---|" * (len(VERDICT_HEADER) + 1)]
    lines += ["| " + " | ".join((*verdict_cells(c), "")) + " |" for c in doc["claims"]]
    return "\n".join(lines)
