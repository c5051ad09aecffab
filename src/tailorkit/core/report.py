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
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.ok{color:#0a7a2f}.no{color:#b00020}
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
        claim_rows = [
            [c["id"], c["text"], c["value"], c["target"], "holds" if c["holds"] else "does not hold"]
            for c in doc["claims"]
        ]
        table = html_table(["claim", "text", "value", "target", "verdict"], claim_rows)
        table = table.replace("<td>holds</td>", "<td class='ok'>holds</td>")
        parts.append(table.replace("<td>does not hold</td>", "<td class='no'>does not hold</td>"))
    plot = bench_plot(doc, out_dir / f"{name}.png")
    if plot is not None:
        parts.append(f"<img src='{plot.name}' alt='{html.escape(name)} metrics'>")
    return "\n".join(parts)


def write_reproduce_report(docs: Sequence[dict[str, Any]], out_dir: str | Path, failures: dict[str, str]) -> Path:
    """DIR/index.html (tables, claims, plots) and DIR/results.json (the bench documents, keyed by subsystem)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = [
        [
            d["subsystem"],
            d["mode"],
            len(d["rows"]),
            f"{sum(c['holds'] for c in d['claims'])}/{len(d['claims'])}",
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


def write_demo_report(sections: Sequence[DemoSection], out_dir: str | Path, failures: dict[str, str]) -> Path:
    out = Path(out_dir)
    body = []
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.text)}</p>")
        if section.table_rows:
            body.append(html_table(section.table_header, section.table_rows))
        if section.image is not None:
            body.append(f"<img src='{html.escape(section.image.name)}' alt='{html.escape(section.title)}'>")
        body.append(f"<p><small>{section.seconds:.1f} s</small></p>")
    if failures:
        body.append("<h2>Parts that failed</h2>" + html_table(["part", "error"], sorted(failures.items())))
    return write_text_atomic(out / "index.html", _page("tailorkit demo", "\n".join(body)))
