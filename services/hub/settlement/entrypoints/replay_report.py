"""The what-if replay's HTML report: totals per fund, a chart per treatment pool (before and after)
and of the patients' shares, and the bills that change most. Self-contained (inline SVG)."""

from __future__ import annotations

import html
from typing import Any

from hub.money import fen_to_yuan as yuan

FONTS = "'Noto Sans CJK SC', 'Noto Sans SC', 'PingFang SC', 'Microsoft YaHei', sans-serif"


def _bars(groups: list[tuple[str, int, int]], width: int = 760, row: int = 30) -> str:
    """Paired horizontal bars (before grey, after blue) per group."""
    top = max([max(b, a) for _, b, a in groups] + [1])
    label_w = 140
    parts = []
    for i, (label, before, after) in enumerate(groups):
        y = 8 + i * row
        for j, (value, colour) in enumerate(((before, "#9e9e9e"), (after, "#1565c0"))):
            length = int((width - label_w - 120) * max(value, 0) / top)
            parts.append(f'<rect x="{label_w}" y="{y + j * 11}" width="{max(length, 1)}" height="10" fill="{colour}"/>'
                         f'<text x="{label_w + length + 4}" y="{y + j * 11 + 9}" font-size="10">{yuan(value)}</text>')
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="11">{html.escape(label)}</text>')
    height = 16 + row * len(groups)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="{html.escape(FONTS)}">'
            + "".join(parts) + "</svg>")


def _histogram(before: list[int], after: list[int], width: int = 760, height: int = 160) -> str:
    top = max(before + after + [1])
    n = len(before)
    slot = (width - 40) / n
    parts = []
    for i in range(n):
        for j, (value, colour) in enumerate(((before[i], "#9e9e9e"), (after[i], "#1565c0"))):
            h = (height - 30) * value / top
            x = 30 + i * slot + j * slot / 2.4
            parts.append(f'<rect x="{x:.1f}" y="{height - 20 - h:.1f}" width="{slot / 2.6:.1f}" height="{max(h, 0.5):.1f}" '
                         f'fill="{colour}"><title>{value}</title></rect>')
        parts.append(f'<text x="{30 + i * slot + slot / 3:.1f}" y="{height - 6}" font-size="10">{i * 10}–{i * 10 + 10}%</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="{html.escape(FONTS)}">'
            + "".join(parts) + "</svg>")


def render(report: dict[str, Any]) -> str:
    before, after = report["total"]["before"], report["total"]["after"]
    fund_rows = "".join(
        f"<tr><td>{html.escape(code)}</td><td class=n>{yuan(before['funds'][code])}</td>"
        f"<td class=n>{yuan(after['funds'][code])}</td><td class=n>{yuan(after['funds'][code] - before['funds'][code])}</td></tr>"
        for code in before["funds"])
    pools = [(p, sum(v["before"]["funds"].values()), sum(v["after"]["funds"].values()))
             for p, v in sorted(report["by_treatment_pool"].items())]
    changes = "".join(
        f"<tr><td>{html.escape(c['setl_id'])}</td><td class=n>{yuan(c['funds_before_fen'])}</td>"
        f"<td class=n>{yuan(c['funds_after_fen'])}</td><td class=n>{yuan(c['change_fen'])}</td></tr>"
        for c in report["largest_changes"])
    notes = "".join(f"<li>{html.escape(k)}: {v}</li>" for k, v in {**report["skipped"], **{
        f"refused under the draft: {k}": v for k, v in report["refused_under_draft"].items()}}.items())
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>What-if replay {html.escape(report['draft'])}</title>
<style>body{{font-family:{FONTS};margin:24px;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} td.n{{text-align:right;font-variant-numeric:tabular-nums}}
.key span{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}}</style></head><body>
<h1>What-if replay: {html.escape(report['draft'])}</h1>
<p>{html.escape(report['pool'])} {html.escape(report['insurance_type'])}: {before['bills']:,} bills settled
{html.escape(report['from'])} – {html.escape(report['to'])}, re-priced under the draft (accumulators replayed from the
start of the window). <span class=key><span style="background:#9e9e9e"></span>as settled
<span style="background:#1565c0"></span>under the draft</span></p>
<h2>Per fund (yuan)</h2>
<table><tr><th>fund_pay_type</th><th>as settled</th><th>under the draft</th><th>change</th></tr>{fund_rows}
<tr><th>patients pay</th><td class=n>{yuan(before['psn_part_amt_fen'])}</td><td class=n>{yuan(after['psn_part_amt_fen'])}</td>
<td class=n>{yuan(after['psn_part_amt_fen'] - before['psn_part_amt_fen'])}</td></tr></table>
<h2>Funds' payments per treatment pool</h2>
{_bars(pools)}
<h2>Patients' share of their bills (number of bills per tenth)</h2>
{_histogram(report['patient_share_tenths']['before'], report['patient_share_tenths']['after'])}
<h2>The bills that change most</h2>
<table><tr><th>setl_id</th><th>funds as settled</th><th>under the draft</th><th>change</th></tr>{changes}</table>
{f'<h2>Not re-priced</h2><ul>{notes}</ul>' if notes else ''}
</body></html>
"""
