"""``OUT.html``: one self-contained page (inline CSS and SVG; no script, no network).

Sections: headline figures, coverage bars (join both ways, review gate, and a plan's data
coverage when one is attached), a heatmap of background x solving operation coloured by rate
(or by delta against the baseline), a forest plot of the slices' effects with 95% intervals,
and every finding with its verdict, reason and evidence table.
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
    return "".join(parts) + f'<div class="muted">Colour: {what}; number: items in the cell.</div>'


def forest_svg(slices: list[Any], limit: int = 30) -> str:
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
    left, width, top, rh = 470, 420, 20, 18
    x = lambda v: left + (max(-1.0, min(1.0, v)) + 1) / 2 * width  # noqa: E731
    parts = [f'<svg id="forest" xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" '
             f'height="{top + rh * len(rows) + 30}" role="img" aria-label="forest plot">',
             f'<line x1="{x(0)}" y1="{top - 8}" x2="{x(0)}" y2="{top + rh * len(rows)}" stroke="#888"/>']
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
            + f", p {f.p_value:.2g}, q {f.q_value:.2g}, items lost {f.severity:.1f}</div>"
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
    return head + "".join(table) + explains + "</div>"


def render(report: Any) -> str:
    """The whole page."""
    o, j, g = report.overall, report.join, report.gate
    headline = (f"{escape(report.metric)} over {o['n']} items: <b>{o['rate']:.3f}</b> "
                f"(95% CI {o['ci'][0]:.3f}–{o['ci'][1]:.3f})")
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
             + f"</div><p>{headline}. Findings: {len(report.findings)} ({verdicts}).</p>",
             "<h2>Coverage</h2>", bars(coverage),
             f"<h2>Heatmap: {escape(report.heatmap['rows'])} × {escape(report.heatmap['cols'])}</h2>",
             heatmap_svg(report.heatmap),
             "<h2>Slice effects (95% intervals)</h2><div class=muted>Delta against the baseline, or the slice's rate "
             "minus the rate of the other items; red: significantly weak after Benjamini–Hochberg.</div>",
             forest_svg(report.slices), f"<h2>Findings ({len(report.findings)})</h2>"]
    if not report.findings:
        parts.append("<p>No slice is significantly weak.</p>")
    parts += [_finding(i, f) for i, f in enumerate(report.findings, 1)]
    if report.intervention:
        parts.append(f"<h2>Intervention</h2><p id=intervention>{escape(report.intervention['summary'])}</p>")
    parts.append("</body></html>")
    return "".join(parts)
