"""Clearing files: one CSV (for people, opens in a spreadsheet), one JSON (for machines) and a
SHA-256 manifest per bureau and day, plus a one-page HTML summary of the day with a chart.

Rendering is deterministic: the same closed day renders to the same bytes (rows sorted, the
stored close time as `generated_at`, no clock, no randomness).
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import orjson

from hub.clearing.domain.netting import PoolPosition
from hub.money import fen_to_yuan as yuan

SHANGHAI = ZoneInfo("Asia/Shanghai")
LINE_COLUMNS = ("direction", "kind", "settlement_id", "reversal_id", "business_date", "late", "hospital_code",
                "home_pool", "treatment_pool", "person_id_masked", "medfee_sumamt_fen", "hifp_pay_fen", "hifmi_pay_fen",
                "maf_pay_fen")


@dataclass(frozen=True)
class DayHeader:
    clearing_date: date
    cycle_id: str
    generated_at: datetime
    pool_names: dict[str, str]

    @property
    def generated_at_text(self) -> str:
        return self.generated_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S %z")


def file_stem(day: date, pool: str) -> str:
    return f"clearing_{day.isoformat()}_{pool}"


def _line_dict(row: Any, pool: str) -> dict[str, Any]:
    sign = -1 if row.kind == "REVERSED" else 1
    return {
        "direction": "RECEIVABLE" if row.treatment_pool == pool else "PAYABLE",
        "kind": row.kind, "settlement_id": row.settlement_id, "reversal_id": row.reversal_id or "",
        "business_date": row.business_date.isoformat(), "late": bool(row.late), "hospital_code": row.hospital_code,
        "home_pool": row.home_pool, "treatment_pool": row.treatment_pool, "person_id_masked": row.person_id_masked,
        "medfee_sumamt_fen": sign * row.medfee_sumamt_fen, "hifp_pay_fen": sign * row.hifp_pay_fen,
        "hifmi_pay_fen": sign * row.hifmi_pay_fen, "maf_pay_fen": sign * row.maf_pay_fen,
    }


def render_pool_files(header: DayHeader, position: PoolPosition, rows: Sequence[Any]) -> dict[str, bytes]:
    """The CSV, JSON and manifest of one pool's clearing file, by file name."""
    pool = position.pool
    lines = sorted((_line_dict(r, pool) for r in rows),
                   key=lambda l: (l["direction"], l["settlement_id"], l["kind"], l["reversal_id"]))
    name = header.pool_names.get(pool, "")
    bilateral = [
        {"counterparty_pool": b.counterparty_pool, "counterparty_name": header.pool_names.get(b.counterparty_pool, ""),
         "receivable_hifp_pay_fen": b.receivable.hifp_pay_fen, "receivable_hifmi_pay_fen": b.receivable.hifmi_pay_fen,
         "receivable_maf_pay_fen": b.receivable.maf_pay_fen, "payable_hifp_pay_fen": b.payable.hifp_pay_fen,
         "payable_hifmi_pay_fen": b.payable.hifmi_pay_fen, "payable_maf_pay_fen": b.payable.maf_pay_fen,
         "net_fen": b.net_fen, "settlement_count": b.settlement_count}
        for b in sorted(position.bilateral, key=lambda b: b.counterparty_pool)
    ]
    totals = {
        "receivable_fen": position.receivable_fen, "payable_fen": position.payable_fen,
        "net_position_fen": position.net_fen, "settlement_lines": len(lines),
        "medfee_sumamt_fen": sum(l["medfee_sumamt_fen"] for l in lines),
    }
    document = {
        "header": {"pool_code": pool, "pool_name": name, "clearing_date": header.clearing_date.isoformat(),
                   "cycle_id": header.cycle_id, "generated_at": header.generated_at_text, "currency": "CNY",
                   "amount_unit": "fen"},
        "net_position_fen": position.net_fen,
        "bilateral": bilateral,
        "settlement_lines": lines,
        "totals": totals,
    }
    # orjson writes the same bytes as json.dumps(indent=2, ensure_ascii=False) for these documents
    # (strings, integers, booleans, nulls), several times faster.
    json_bytes = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["清算文件 clearing file"])
    for label, value in (("统筹区 pool", f"{pool} {name}".strip()), ("清算日 clearing date", header.clearing_date.isoformat()),
                         ("清算批次 cycle", header.cycle_id), ("生成时间 generated at", header.generated_at_text),
                         ("金额单位 amounts", "元 yuan"),
                         ("净头寸 net position (+ receives / - pays)", yuan(position.net_fen))):
        w.writerow([label, value])
    w.writerow([])
    w.writerow(["双边 bilateral", "对方统筹区 counterparty", "应收基金 receivable fund", "应收大病 receivable serious illness",
                "应收救助 receivable assistance", "应付基金 payable fund", "应付大病 payable serious illness",
                "应付救助 payable assistance", "净额 net", "笔数 count"])
    for b in bilateral:
        w.writerow(["", f"{b['counterparty_pool']} {b['counterparty_name']}".strip(), yuan(b["receivable_hifp_pay_fen"]),
                    yuan(b["receivable_hifmi_pay_fen"]), yuan(b["receivable_maf_pay_fen"]),
                    yuan(b["payable_hifp_pay_fen"]), yuan(b["payable_hifmi_pay_fen"]),
                    yuan(b["payable_maf_pay_fen"]), yuan(b["net_fen"]), b["settlement_count"]])
    w.writerow([])
    w.writerow(["明细 lines", *LINE_COLUMNS])
    for l in lines:
        w.writerow(["", *[yuan(l[c]) if c.endswith("_fen") else ("Y" if l[c] is True else "N" if l[c] is False else l[c])
                          for c in LINE_COLUMNS]])
    w.writerow([])
    w.writerow(["合计 totals", "应收 receivable", yuan(totals["receivable_fen"]), "应付 payable", yuan(totals["payable_fen"]),
                "净额 net", yuan(totals["net_position_fen"]), "明细笔数 lines", totals["settlement_lines"]])
    # A byte-order mark so spreadsheet programs read the Chinese text as UTF-8.
    csv_bytes = "\ufeff".encode("utf-8") + out.getvalue().encode("utf-8")

    stem = file_stem(header.clearing_date, pool)
    manifest = "".join(f"{hashlib.sha256(data).hexdigest()}  {fname}\n"
                       for fname, data in ((f"{stem}.csv", csv_bytes), (f"{stem}.json", json_bytes))).encode()
    return {f"{stem}.csv": csv_bytes, f"{stem}.json": json_bytes, f"{stem}.sha256": manifest}


def manifest_sha256(files: dict[str, bytes]) -> str:
    manifest = next(data for name, data in files.items() if name.endswith(".sha256"))
    return hashlib.sha256(manifest).hexdigest()


def render_summary(header: DayHeader, positions: Sequence[PoolPosition], gross_fen: int, net_abs_fen: int,
                   efficiency: Fraction, confirmed: dict[str, bool]) -> bytes:
    """One page: a bar chart of every pool's net position and a table, as self-contained HTML (inline SVG)."""
    ordered = sorted(positions, key=lambda p: (p.net_fen, p.pool))
    biggest = max((abs(p.net_fen) for p in ordered), default=1) or 1
    bar_h, width, label_w = 26, 760, 200
    half = (width - label_w) // 2
    bars = []
    for i, p in enumerate(ordered):
        y = 10 + i * bar_h
        length = int(half * abs(p.net_fen) / biggest)
        x = label_w + half if p.net_fen >= 0 else label_w + half - length
        colour = "#2e7d32" if p.net_fen >= 0 else "#c62828"
        label = html.escape(f"{p.pool} {header.pool_names.get(p.pool, '')}".strip())
        bars.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{label}</text>'
                    f'<rect x="{x}" y="{y + 4}" width="{max(length, 1)}" height="{bar_h - 8}" fill="{colour}"/>'
                    f'<text x="{x + length + 4 if p.net_fen >= 0 else x - 4}" y="{y + 17}" '
                    f'text-anchor="{"start" if p.net_fen >= 0 else "end"}" font-size="11">{yuan(p.net_fen)}</text>')
    height = 20 + bar_h * len(ordered)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 120}" height="{height}" role="img" '
           f'aria-label="net position per pool" font-family="sans-serif" font-size="12">'
           f'<line x1="{label_w + half}" y1="0" x2="{label_w + half}" y2="{height}" stroke="#555"/>'
           + "".join(bars) + "</svg>")
    rows = "".join(
        f"<tr><td>{html.escape(p.pool)}</td><td>{html.escape(header.pool_names.get(p.pool, ''))}</td>"
        f"<td class=n>{yuan(p.receivable_fen)}</td><td class=n>{yuan(p.payable_fen)}</td>"
        f"<td class=n>{yuan(p.net_fen)}</td><td class=n>{p.settlement_count}</td>"
        f"<td>{'confirmed' if confirmed.get(p.pool) else 'unconfirmed'}</td></tr>"
        for p in sorted(positions, key=lambda p: p.pool))
    page = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>清算日 {header.clearing_date} — clearing summary</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} td.n{{text-align:right;font-variant-numeric:tabular-nums}}
.kpi{{display:inline-block;margin-right:32px}} .kpi b{{display:block;font-size:22px}}</style></head><body>
<h1>跨区域清算 Interregion clearing — {header.clearing_date}</h1>
<p>Cycle {html.escape(header.cycle_id)}, generated {html.escape(header.generated_at_text)}.</p>
<div class=kpi>Gross obligations<b>{yuan(gross_fen // 2)} 元</b></div>
<div class=kpi>Moved after netting<b>{yuan(net_abs_fen // 2)} 元</b></div>
<div class=kpi>Netting efficiency<b>{float(efficiency) * 100:.1f} %</b></div>
<h2>Net position per pool (green receives, red pays)</h2>
{svg}
<h2>Pools</h2>
<table><tr><th>pool</th><th>name</th><th>receivable</th><th>payable</th><th>net</th><th>lines</th><th>bureau</th></tr>
{rows}</table>
</body></html>
"""
    return page.encode("utf-8")


def move_files(staging: Path, directory: Path) -> list[Path]:
    """Every file of `staging` into `directory` (each replaced in one step, so readers never see a
    half-written file), then `staging` removed: the files of a close become visible only after
    its transaction committed."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for path in sorted(staging.iterdir()):
        target = directory / path.name
        path.replace(target)
        paths.append(target)
    staging.rmdir()
    return paths


def write_files(directory: Path, files: dict[str, bytes]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in sorted(files.items()):
        path = directory / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see a half-written file
        paths.append(path)
    return paths
