"""``OUT.html``: one self-contained page (inline CSS and SVG; no script, no network).

Sections: the headline sentence and the per-benchmark table; what the model wrote (response
states per run side by side with their rates, length and repetition histograms, a few trimmed
runaway / no-answer / buried responses); the lost and gained items decomposed by response state
and by finding; coverage bars (join both ways, review gate, a plan's data coverage); a heatmap of
background x solving operation coloured by rate or delta, with its colour scale; a forest plot of
the slices' effects with 95% intervals (labels sized to fit); every finding with its verdict,
reason, checks and evidence table.
"""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1180px;color:#1d2330}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde}
.muted{color:#667} table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #dde;padding:3px 7px;
text-align:right} th{background:#f3f4f8} td.l,th.l{text-align:left}
.verdict{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600}
.v-data{background:#1f7a4d} .v-non-data{background:#9b3b3b} .v-inconclusive{background:#7a6a1f}
.finding{border:1px solid #dde;border-radius:8px;padding:10px 14px;margin:12px 0}
.bar{height:14px;background:#4464ad;display:inline-block;vertical-align:middle}
.barbg{width:320px;background:#e7e9f2;display:inline-block}
pre{white-space:pre-wrap;background:#f6f7fb;border:1px solid #dde;padding:6px 8px;font-size:12px;max-height:220px;
overflow:auto} .headline{font-size:16px;background:#f3f4f8;border-left:4px solid #4464ad;padding:8px 12px}
"""


def _color(value: float | None, diverging: bool) -> str:
    if value is None:
        return "#eeeeee"
    if diverging:  # delta in -1..1: red for losses, green for gains
        v = max(-1.0, min(1.0, value))
        r, g = (220, int(220 * (1 + v))) if v < 0 else (int(220 * (1 - v)), 200)
        return f"rgb({r},{g},{int(200 * (1 - abs(v)))})"
    v = max(0.0, min(1.0, value))
    return f"rgb({int(230 - 150 * v)},{int(90 + 120 * v)},{int(90 + 40 * v)})"


def heatmap_svg(data: dict[str, Any]) -> str:
    """Background x solving-operation cells, coloured by delta when present, else by rate."""
    cells = data["cells"]
    rows = sorted({c["row"] for c in cells})
    cols = sorted({c["col"] for c in cells})
    diverging = any(c.get("delta") is not None for c in cells)
    cw, ch, left, top = 34, 24, 170, 150
    width, height = left + cw * len(cols) + 110, top + ch * len(rows) + 10
    parts = [f'<svg id="heatmap" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="heatmap of {escape(data["rows"])} by {escape(data["cols"])}">']
    for j, col in enumerate(cols):
        x = left + j * cw + cw / 2
        parts.append(f'<text x="{x}" y="{top - 6}" font-size="11" transform="rotate(-55 {x} {top - 6})">'
                     f'{escape(col)}</text>')
    index = {(c["row"], c["col"]): c for c in cells}
    for i, row in enumerate(rows):
        y = top + i * ch
        parts.append(f'<text x="{left - 6}" y="{y + 16}" font-size="11" text-anchor="end">{escape(row)}</text>')
        for j, col in enumerate(cols):
            cell = index.get((row, col))
            if not cell:
                continue
            value = cell.get("delta") if diverging else cell["rate"]
            label = f"{escape(row)} x {escape(col)}: n {cell['n']}, rate {cell['rate']:.2f}" + (
                f", delta {cell['delta']:+.2f}" if cell.get("delta") is not None else "")
            parts.append(f'<rect class="cell" x="{left + j * cw}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                         f'fill="{_color(value, diverging)}"><title>{label}</title></rect>'
                         f'<text x="{left + j * cw + cw / 2 - 1}" y="{y + 15}" font-size="10" '
                         f'text-anchor="middle">{cell["n"]}</text>')
    parts.append("</svg>")
    what = "delta against the baseline (red: lost, green: gained)" if diverging else "rate (red low, green high)"
    legend = f'<div class="muted">Colour: {what}; number: items in the cell.</div>'
    return "".join(parts) + colour_scale(diverging) + legend


def colour_scale(diverging: bool) -> str:
    """The heatmap's colour scale: a row of swatches with their values."""
    values = [-1, -0.5, -0.25, 0, 0.25, 0.5, 1] if diverging else [0, 0.2, 0.4, 0.6, 0.8, 1]
    parts = ['<svg id="colour-scale" xmlns="http://www.w3.org/2000/svg" width="460" height="34" role="img" '
             'aria-label="colour scale">']
    for i, v in enumerate(values):
        parts.append(f'<rect x="{i * 60}" y="0" width="58" height="14" fill="{_color(v, diverging)}"/>'
                     f'<text x="{i * 60 + 29}" y="28" font-size="10" text-anchor="middle">{v:+.2f}</text>')
    return "".join(parts) + "</svg>"


def forest_svg(slices: list[Any], limit: int = 30, shift: float | None = None) -> str:
    """Effects (delta, or rate minus the rest) with 95% intervals: weak slices first, then the largest losses."""
    rows = []
    for s in slices:
        if s.delta is not None and s.delta_ci is not None:
            rows.append((s, s.delta, s.delta_ci))
        elif s.rest_rate is not None:
            shift = s.rest_rate
            rows.append((s, s.rate - shift, (s.ci[0] - shift, s.ci[1] - shift)))
    rows.sort(key=lambda r: (not r[0].weak, r[1]))  # weak slices first, then the largest losses
    rows = rows[:limit]
    names = [", ".join(f"{d}={v}" for d, v in s.slice.items()) for s, _, _ in rows]
    longest = max((min(len(n), 70) + len(f" (n {s.n})") for n, (s, _, _) in zip(names, rows, strict=True)), default=10)
    left, width, top, rh = int(longest * 6.6) + 16, 420, 20, 18  # room for the longest label at 11 px
    x = lambda v: left + (max(-1.0, min(1.0, v)) + 1) / 2 * width  # noqa: E731
    parts = [f'<svg id="forest" xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" '
             f'height="{top + rh * len(rows) + 30}" role="img" aria-label="forest plot">',
             f'<line x1="{x(0)}" y1="{top - 8}" x2="{x(0)}" y2="{top + rh * len(rows)}" stroke="#888"/>']
    if shift is not None:  # the benchmark-wide change: weak = changed worse than the rest, not merely fell
        bottom = top + rh * len(rows)
        parts.append(f'<line id="shift" x1="{x(shift)}" y1="{top - 8}" x2="{x(shift)}" y2="{bottom}" '
                     f'stroke="#b23b3b" stroke-dasharray="4 3">'
                     f"<title>benchmark-wide change {shift:+.3f}</title></line>")
    for i, (s, eff, (lo, hi)) in enumerate(rows):
        y = top + i * rh + rh / 2
        full = ", ".join(f"{d}={v}" for d, v in s.slice.items())
        name = escape(full if len(full) <= 70 else full[:69] + "…")
        colour = "#b23b3b" if s.weak else "#4464ad"
        parts.append(f'<text x="{left - 8}" y="{y + 4}" font-size="11" text-anchor="end">{name} (n {s.n})</text>'
                     f'<line class="ci" x1="{x(lo)}" y1="{y}" x2="{x(hi)}" y2="{y}" stroke="{colour}" '
                     'stroke-width="2"/>'
                     f'<circle class="point" cx="{x(eff)}" cy="{y}" r="4" fill="{colour}"><title>{name}: '
                     f'{eff:+.3f} ({lo:+.3f} to {hi:+.3f})</title></circle>')
    y = top + rh * len(rows) + 18
    for tick in (-1, -0.5, 0, 0.5, 1):
        parts.append(f'<text x="{x(tick)}" y="{y}" font-size="10" text-anchor="middle">{tick:+.1f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bars(rows: list[tuple[str, int, int]]) -> str:
    """Coverage bars: label, part, whole."""
    out = ['<table id="coverage">']
    for label, part, whole in rows:
        share = part / whole if whole else 0.0
        out.append(f'<tr><td class="l">{escape(label)}</td><td class="l"><span class="barbg">'
                   f'<span class="bar" style="width:{share * 100:.1f}%"></span></span></td>'
                   f"<td>{part} / {whole} ({share:.0%})</td></tr>")
    out.append("</table>")
    return "".join(out)


def _finding(i: int, f: Any) -> str:
    name = escape(", ".join(f"{d}={v}" for d, v in f.slice.items()))
    head = (f'<div class="finding" id="finding-{i}"><h3>{i}. {name} <span class="verdict v-{f.verdict}">'
            f"{f.verdict}</span></h3><div>n {f.n}, rate {f.rate:.3f}"
            + (f", baseline {f.baseline_rate:.3f}, delta {f.delta:+.3f}" if f.delta is not None else "")
            + (f" (other items {f.rest_delta:+.3f})" if f.rest_delta is not None else "")
            + f", {escape(f.kind.replace('_', ' '))}, p {f.p_value:.2g}, q {f.q_value:.2g}, "
            f"items lost beyond the rest {f.severity:.1f}</div>"
            f"<p>{escape(f.reason)}</p>")
    m = escape(f.evidence.get("measure", ""))
    table = [f'<table class="evidence"><tr><th class="l">dimension</th><th class="l">label</th><th>n in</th>'
             f"<th>{m} in</th><th>n out</th><th>{m} out</th><th>deficit</th><th>holds outside</th></tr>"]
    for r in f.evidence.get("rows", []):
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        holds = "-" if r["holds_outside"] is None else ("yes" if r["holds_outside"] else "no")
        table.append(f'<tr><td class="l">{escape(r["dimension"])}</td><td class="l">{escape(r["label"])}</td>'
                     f"<td>{r['n_in']}</td><td>{fmt(r['value_in'])}</td><td>{r['n_out']}</td>"
                     f"<td>{fmt(r['value_out'])}</td><td>{'yes' if r['shows_deficit'] else 'no'}</td>"
                     f"<td>{holds}</td></tr>")
    table.append("</table>")
    explains = ""
    if f.explains:
        explains = "<p class=muted>Explains: " + escape("; ".join(
            ", ".join(f"{d}={v}" for d, v in e["slice"].items()) + f" (n {e['n']})" for e in f.explains)) + "</p>"
    checks = "".join(f"<p><b>Check:</b> {escape(c)}</p>" for c in f.checks)
    states = f.evidence.get("baseline_states")
    before = ("<p class=muted>Same items at the baseline: " + escape(", ".join(f"{k} {v}" for k, v in states.items()))
              + "</p>") if states else ""
    return head + checks + before + "".join(table) + explains + "</div>"


def render(report: Any) -> str:
    """The whole page."""
    o, j, g = report.overall, report.join, report.gate
    headline = (f"{escape(report.metric)} over {o['n']} items: <b>{o['rate']:.3f}</b> "
                f"(95% CI {o['ci'][0]:.3f}–{o['ci'][1]:.3f})") if o.get("rate") is not None else escape(
        f"{o['n']} items; {o.get('note', '')}")
    if o.get("baseline_rate") is not None:
        headline += f"; baseline {o['baseline_rate']:.3f}, delta <b>{o['delta']:+.3f}</b>"
    coverage = [("labels with results", j["matched"], j["labels"]), ("results with labels", j["matched"], j["results"]),
                ("label rows through the review gate", g["rows_out"], g["rows_in"])]
    if report.intervention and report.intervention.get("coverage"):
        coverage += [(f"plan category {c['dimension']}={c['label']}: docs vs wanted", min(c["available"], c["wanted"]),
                      c["wanted"]) for c in report.intervention["coverage"]]
    verdicts = ", ".join(f"{sum(f.verdict == v for f in report.findings)} {v}" for v in ("data", "non-data",
                                                                                          "inconclusive"))
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Slice report {report.report_id}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>Slice report {escape(report.report_id)}</h1><div class=muted>{escape(report.created)} · labels "
             f"{escape(report.labels)} · taxonomy {escape(report.taxonomy_version)}"
             + (" · <b>unreviewed labels allowed</b>" if g["allow_unreviewed"] else " · reviewed labels only")
             + f"</div><p class=headline id=headline>{escape(report.headline)}</p>",
             "<h2>Benchmarks</h2>", benchmarks_table(report.benchmarks),
             f"<p>{headline}. Findings: {len(report.findings)} ({verdicts}).</p>",
             responses_section(report.responses, o.get("decomposition") or {}),
             "<h2>Coverage</h2>", bars(coverage),
             f"<h2>Heatmap: {escape(report.heatmap['rows'])} × {escape(report.heatmap['cols'])}</h2>",
             heatmap_svg(report.heatmap),
             "<h2>Slice effects (95% intervals)</h2><div class=muted>Delta against the baseline (dashed: the "
             "benchmark-wide change; a slice is weak when it changed worse than the other items), or the slice's "
             "rate minus the rate of the other items; red: significantly weak after Benjamini–Hochberg.</div>",
             forest_svg(report.slices, shift=o.get("delta")), f"<h2>Findings ({len(report.findings)})</h2>"]
    if not report.findings:
        parts.append("<p>No slice is significantly weak.</p>")
    parts += [_finding(i, f) for i, f in enumerate(report.findings, 1)]
    if report.intervention:
        parts.append(f"<h2>Intervention</h2><p id=intervention>{escape(report.intervention['summary'])}</p>")
    parts.append("</body></html>")
    return "".join(parts)


def benchmarks_table(rows: list[dict[str, Any]]) -> str:
    """Per task: metric, n, rate, baseline, delta, lost, gained, response states."""
    out = ['<table id="benchmarks"><tr><th class="l">task</th><th class="l">metric</th><th>n</th><th>rate</th>'
           "<th>baseline</th><th>delta</th><th>lost</th><th>gained</th><th class=l>response states</th></tr>"]
    for b in rows:
        f = lambda v, sign="": "-" if v is None else f"{v:{sign}.3f}"  # noqa: E731
        states = ", ".join(f"{k} {v}" for k, v in b["states"].items())
        out.append(f'<tr><td class="l">{escape(b["task"])}</td><td class="l">{escape(str(b["metric"]))}</td>'
                   f"<td>{b['n']}</td><td>{f(b['rate'])}</td><td>{f(b.get('baseline_rate'))}</td>"
                   f"<td>{f(b.get('delta'), '+')}</td><td>{b.get('lost', '-')}</td><td>{b.get('gained', '-')}</td>"
                   f'<td class="l">{escape(states)}</td></tr>')
    return "".join(out) + "</table>"


def histogram_svg(name: str, edges: list[float], runs: dict[str, list[int]], fmt: str) -> str:
    """Side-by-side bars of one distribution per run (share of the run's responses per bin)."""
    colours = {"now": "#b23b3b", "baseline": "#4464ad"}
    bw, h, top = 46, 90, 10
    parts = [f'<svg id="hist-{name}" xmlns="http://www.w3.org/2000/svg" width="{bw * len(edges) + 20}" '
             f'height="{h + 50}" role="img" aria-label="{escape(name)} distribution">']
    for j, (run, counts) in enumerate(runs.items()):
        total = sum(counts) or 1
        for i, c in enumerate(counts):
            bar = h * c / total
            x = i * bw + j * (bw // 2 - 2)
            parts.append(f'<rect x="{x}" y="{top + h - bar}" width="{bw // 2 - 3}" height="{bar}" '
                         f'fill="{colours.get(run, "#888")}">'
                         f"<title>{escape(run)}: {c} ({c / total:.0%})</title></rect>")
    for i, e in enumerate(edges):
        parts.append(f'<text x="{i * bw + bw / 2}" y="{top + h + 14}" font-size="10" text-anchor="middle">'
                     f"{format(e, fmt)}+</text>")
    legend = " ".join(f'<tspan fill="{colours.get(r, "#888")}">■ {escape(r)}</tspan>' for r in runs)
    parts.append(f'<text x="0" y="{top + h + 34}" font-size="11">{legend}</text></svg>')
    return "".join(parts)


def responses_section(r: dict[str, Any], decomposition: dict[str, Any]) -> str:
    """What the model wrote: states per run, distributions, examples, and the lost items decomposed."""
    if not r:
        return "<h2>Responses</h2><p class=muted>No response text in the results: states are n/a.</p>"
    runs = list(r["states"])
    order = ("runaway", "no_answer", "buried", "answered", "n/a")
    states = [s for s in order if any(s in r["states"][x] for x in runs)]
    head = "".join(f"<th>{escape(run)} n</th><th>{escape(run)} share</th><th>{escape(run)} rate</th>" for run in runs)
    rows = []
    for s in states:
        cells = ""
        for run in runs:
            n, total = r["states"][run].get(s, 0), sum(r["states"][run].values()) or 1
            rate = r["rates"].get(run, {}).get(s)
            cells += f"<td>{n}</td><td>{n / total:.1%}</td><td>{'-' if rate is None else f'{rate:.3f}'}</td>"
        rows.append(f'<tr><td class="l">{escape(s)}</td>{cells}</tr>')
    parts = ["<h2>Responses: what the model wrote</h2>",
             f'<table id="states"><tr><th class="l">state</th>{head}</tr>{"".join(rows)}</table>']
    d = r["distribution"]
    parts += ["<h3>Response length (characters)</h3>",
              histogram_svg("length", d["length_edges"], {k: v["length"] for k, v in d.items() if k in runs}, ".0f"),
              "<h3>Repetition (share of repeated 5-grams)</h3>",
              histogram_svg("repetition", d["repetition_edges"],
                            {k: v["repetition"] for k, v in d.items() if k in runs}, ".2f")]
    if decomposition:
        lost = decomposition
        parts.append(f"<h3>Items lost and gained</h3><p>Lost {lost['lost']}, gained {lost['gained']} "
                     f"(net {lost['net']:+d}).</p><table id='decomposition'><tr><th class=l>by</th>"
                     "<th class=l>group</th>"
                     "<th>lost</th><th>gained</th></tr>")
        for s, v in lost["by_state"].items():
            parts.append(f"<tr><td class=l>response now</td><td class=l>{escape(s)}</td><td>{v['lost']}</td>"
                         f"<td>{v['gained']}</td></tr>")
        for s, v in (lost.get("by_baseline_state") or {}).items():
            parts.append(f"<tr><td class=l>response at baseline</td><td class=l>{escape(s)}</td><td>{v['lost']}</td>"
                         f"<td>{v['gained']}</td></tr>")
        for row in lost["by_finding"]:
            name = ", ".join(f"{k}={v}" for k, v in row["slice"].items())
            parts.append(f"<tr><td class=l>finding</td><td class=l>{escape(name)}</td><td>{row['lost']}</td>"
                         f"<td>{row['gained']}</td></tr>")
        parts.append("</table>")
    for state, examples in r.get("examples", {}).items():
        if examples:
            parts.append(f"<h3>{escape(state)} responses (trimmed)</h3>")
            parts += [f'<div class="example"><div class=muted>{escape(str(e["id"]))} · {escape(str(e["task"]))} · '
                      f'{e["length"]} characters · {escape(e["why"])}</div><pre>{escape(e["text"])}</pre></div>'
                      for e in examples]
    return "".join(parts)
