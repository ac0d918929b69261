"""Clearing files: per bureau and day one CSV (for people, opens in a spreadsheet), one XLSX
workbook (a sheet per section), one JSON (for machines, amounts in fen), a SHA-256 manifest of
the three and its SM2 signature; plus a one-page HTML summary of the day with a chart.

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
from typing import Any, NamedTuple, Sequence

import orjson

from hub.business_day import SHANGHAI
from hub.signing import Signer, signature_document
from hub.clearing.adapters.workbook import MONEY, Number, Sheet, workbook
from hub.clearing.domain.funds import INSUTYPE_CODES
from hub.clearing.domain.netting import PoolPosition
from hub.money import fen_to_yuan as yuan

# The lines as the JSON has them (amounts in fen, integers) ...
LINE_COLUMNS = ("direction", "kind", "settlement_id", "reversal_id", "business_date", "late", "hospital_code",
                "home_pool", "treatment_pool", "insutype", "person_id_masked", "medfee_sumamt_fen", "hifp_pay_fen",
                "hifmi_pay_fen", "maf_pay_fen")
# ... and as the CSV and the workbook show them: amounts in yuan, named so.
YUAN_COLUMNS = tuple(c.removesuffix("_fen") + "_yuan" if c.endswith("_fen") else c for c in LINE_COLUMNS)
SHARE_FIELDS = ("hifp_pay_fen", "hifmi_pay_fen", "maf_pay_fen")
# Pool names are Chinese: fonts that have the characters, before the generic family (which on a
# machine without a CJK font draws empty boxes).
# A day's workbook lists at most this many lines per bureau, then says how many more the CSV and
# JSON hold: a day of a million settlements has two million bureau lines, minutes of the close
# for sheets the CSV already gives a spreadsheet. (Measured with xlsxwriter, ~60 µs a line: the
# 100k-settlement close went from 5.7 s to 27 s with every line in the workbook. workbook.py
# writes a line in a fifth of that, which does not change the argument.)
# A month's statement, which a bureau confirms line by line, lists every line.
DAY_XLSX_MAX_LINES = 1_000
CJK_FONTS = ("'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', "
             "'WenQuanYi Micro Hei', sans-serif")


class LineRow(NamedTuple):
    """An applied event as a file's line reads it (the columns of applied_events it needs)."""

    kind: str
    settlement_id: str
    reversal_id: str | None
    business_date: date
    late: bool
    hospital_code: str
    home_pool: str
    treatment_pool: str
    insurance_type: str
    person_id_masked: str
    medfee_sumamt_fen: int
    hifp_pay_fen: int
    hifmi_pay_fen: int
    maf_pay_fen: int


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
        "home_pool": row.home_pool, "treatment_pool": row.treatment_pool,
        "insutype": INSUTYPE_CODES[row.insurance_type], "person_id_masked": row.person_id_masked,
        "medfee_sumamt_fen": sign * row.medfee_sumamt_fen, "hifp_pay_fen": sign * row.hifp_pay_fen,
        "hifmi_pay_fen": sign * row.hifmi_pay_fen, "maf_pay_fen": sign * row.maf_pay_fen,
    }


def _hospitals(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the pool's own hospitals were paid at the counter for other pools' insured, per
    hospital and insurance type: a treatment bureau pays its hospitals from this."""
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for l in lines:
        if l["direction"] != "RECEIVABLE":
            continue
        h = by.setdefault((l["hospital_code"], l["insutype"]), {
            "hospital_code": l["hospital_code"], "insutype": l["insutype"], "settlement_lines": 0,
            "medfee_sumamt_fen": 0, "hifp_pay_fen": 0, "hifmi_pay_fen": 0, "maf_pay_fen": 0})
        h["settlement_lines"] += 1
        for name in ("medfee_sumamt_fen", *SHARE_FIELDS):
            h[name] += l[name]
    return [by[k] for k in sorted(by)]


def position_parts(header: DayHeader, position: PoolPosition) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A pool's position on a day as its file gives it: per fund, and per counterparty and
    insurance type (the bureau portal shows the same without the lines)."""
    funds = [{"insutype": f.fund.insutype, "fund_pay_type": f.fund.fund_pay_type, "fund_name": f.fund.name,
              "receivable_fen": f.receivable_fen, "payable_fen": f.payable_fen, "net_fen": f.net_fen}
             for f in position.funds]
    bilateral = [
        {"counterparty_pool": b.counterparty_pool, "counterparty_name": header.pool_names.get(b.counterparty_pool, ""),
         "insutype": INSUTYPE_CODES[b.insurance_type],
         "receivable_hifp_pay_fen": b.receivable.hifp_pay_fen, "receivable_hifmi_pay_fen": b.receivable.hifmi_pay_fen,
         "receivable_maf_pay_fen": b.receivable.maf_pay_fen, "payable_hifp_pay_fen": b.payable.hifp_pay_fen,
         "payable_hifmi_pay_fen": b.payable.hifmi_pay_fen, "payable_maf_pay_fen": b.payable.maf_pay_fen,
         "net_fen": b.net_fen, "settlement_count": b.settlement_count}
        for b in sorted(position.bilateral, key=lambda b: (b.counterparty_pool, INSUTYPE_CODES[b.insurance_type]))
    ]
    return funds, bilateral


def render_pool_files(header: DayHeader, position: PoolPosition, rows: Sequence[Any],
                      signer: Signer | None = None, advance: dict[str, Any] | None = None,
                      anomalies: list[dict[str, Any]] | None = None,
                      manual_claims: list[dict[str, Any]] | None = None) -> dict[str, bytes]:
    """One pool's clearing file set, by file name: CSV, JSON, XLSX, the SHA-256 manifest of the
    three and (with a signer) the manifest's detached SM2 signature. `advance`: the day's
    movement of the bureau's advance fund (预付金), when the day kept one."""
    pool = position.pool
    lines = sorted((_line_dict(r, pool) for r in rows),
                   key=lambda l: (l["direction"], l["settlement_id"], l["kind"], l["reversal_id"]))
    name = header.pool_names.get(pool, "")
    funds, bilateral = position_parts(header, position)
    hospitals = _hospitals(lines)
    totals = {
        "receivable_fen": position.receivable_fen, "payable_fen": position.payable_fen,
        "net_position_fen": position.net_fen, "settlement_lines": len(lines),
        "medfee_sumamt_fen": sum(l["medfee_sumamt_fen"] for l in lines),
    }
    head = {"pool_code": pool, "pool_name": name, "clearing_date": header.clearing_date.isoformat(),
            "cycle_id": header.cycle_id, "generated_at": header.generated_at_text, "currency": "CNY",
            "amount_unit": "fen"}
    document = {"header": head, "net_position_fen": position.net_fen, "funds": funds, "bilateral": bilateral,
                "hospitals": hospitals, "settlement_lines": lines, "totals": totals}
    if advance is not None:
        document["advance"] = advance
    document["anomalies"] = anomalies or []
    if manual_claims:  # 零星报销: the home fund paid its insured; in no net position
        document["manual_claims"] = manual_claims
    # orjson writes the same bytes as json.dumps(indent=2, ensure_ascii=False) for these documents
    # (strings, integers, booleans, nulls), several times faster.
    sections = _sections(header, position, name, funds, bilateral, hospitals, lines, totals, advance)
    sections.insert(-1, Section("异常提示 anomaly flags (for the home bureau to look at)",
                                ("kind", "subject", "detail", "settlement_ids"),
                                [[a["kind"], a["subject"], a["detail"], " ".join(a["settlement_ids"])]
                                 for a in anomalies or []]))
    if manual_claims:
        sections.insert(-1, _manual_claims_section(manual_claims))
    return file_set(file_stem(header.clearing_date, pool), document, sections, header.generated_at, signer,
                    DAY_XLSX_MAX_LINES)


def file_set(stem: str, document: dict[str, Any], sections: list["Section"], created: datetime,
             signer: Signer | None, xlsx_max_rows: int | None = None) -> dict[str, bytes]:
    """A document's files by name: JSON (amounts in fen), CSV and XLSX (the sections, in yuan),
    the SHA-256 manifest of the three and, with a signer, its detached SM2 signature."""
    # orjson writes the same bytes as json.dumps(indent=2, ensure_ascii=False) for these documents
    # (strings, integers, booleans, nulls), several times faster.
    json_bytes = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    csv_bytes = _csv(sections)
    xlsx_bytes = _xlsx(sections, created, xlsx_max_rows)
    manifest = "".join(f"{hashlib.sha256(data).hexdigest()}  {fname}\n"
                       for fname, data in ((f"{stem}.csv", csv_bytes), (f"{stem}.json", json_bytes),
                                           (f"{stem}.xlsx", xlsx_bytes))).encode()
    out = {f"{stem}.csv": csv_bytes, f"{stem}.json": json_bytes, f"{stem}.xlsx": xlsx_bytes, f"{stem}.sha256": manifest}
    if signer is not None:
        out[f"{stem}.sig"] = signature_document(f"{stem}.sha256", signer.public_key_hex, signer.sign(manifest))
    return out


STATEMENT_LINE_COLUMNS = ("event_id", "state", "reason", "carried_from", "kind", "settlement_id", "reversal_id",
                          "clearing_date", "hospital_code", "counterparty_pool", "insutype", "person_id_masked",
                          "medfee_sumamt_fen", "hifp_pay_fen", "hifmi_pay_fen", "maf_pay_fen")


def render_statement_files(statement: dict[str, Any], lines: list[dict[str, Any]], pool_names: dict[str, str],
                           created: datetime, signer: Signer | None,
                           manual_claims: list[dict[str, Any]] | None = None) -> dict[str, bytes]:
    """A closed monthly statement's file set (statement_<month>_<pool>.*): its totals and
    advance top-up, a summary per counterparty and insurance type, and every line with its state."""
    pool, month = statement["bureau_pool"], statement["month"]
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for l in lines:
        c = by.setdefault((l["counterparty_pool"], l["insutype"]), {
            "counterparty_pool": l["counterparty_pool"], "counterparty_name": pool_names.get(l["counterparty_pool"], ""),
            "insutype": l["insutype"], "lines": 0, **{f"{s.lower()}_fen": 0 for s in
                                                        ("CONFIRMED", "DISPUTED", "RESOLVED", "PENDING")}})
        c["lines"] += 1
        c[f"{l['state'].lower()}_fen"] += l["hifp_pay_fen"] + l["hifmi_pay_fen"] + l["maf_pay_fen"]
    counterparties = [by[k] for k in sorted(by)]
    document = {"statement": {**statement, "bureau_name": pool_names.get(pool, ""), "amount_unit": "fen"},
                "counterparties": counterparties, "lines": lines}
    if manual_claims:  # 零星报销 the bureau paid its insured this month: for its books, nothing to confirm
        document["manual_claims"] = manual_claims
    about = Section("月度清算对账单 monthly statement", ("项目 item", "值 value"), [
        ["统筹区 bureau", f"{pool} {pool_names.get(pool, '')}".strip()], ["月份 month", month],
        ["状态 status", statement["status"]], ["出具 issued", statement["issued_at"]],
        ["关闭 closed", statement["closed_at"] or ""], ["金额单位 amounts", "元 yuan"],
        ["已确认 confirmed", yuan(statement["confirmed_fen"])], ["争议暂扣 disputed (withheld)", yuan(statement["disputed_fen"])],
        ["已解决待结转 resolved, carried to next month", yuan(statement["resolved_fen"])],
        ["待确认 pending", yuan(statement["pending_fen"])],
        ["预付金余额 advance balance", yuan(statement["advance_balance_fen"])],
        ["预付金应备 advance required", yuan(statement["advance_required_fen"])],
        ["应补缴预付金 advance top-up requested", yuan(statement["top_up_fen"])]])
    cp_columns = ("counterparty_pool", "counterparty_name", "insutype", "lines", "confirmed_fen", "disputed_fen",
                  "resolved_fen", "pending_fen")
    sections = [about,
                Section("对方统筹区 counterparties", _yuan_names(cp_columns), [_yuan_cells(c, cp_columns) for c in counterparties]),
                Section("明细 lines", _yuan_names(STATEMENT_LINE_COLUMNS),
                        [_yuan_cells(l, STATEMENT_LINE_COLUMNS) for l in lines])]
    if manual_claims:
        sections.insert(-1, _manual_claims_section(manual_claims))
    return file_set(f"statement_{month}_{pool}", document, sections, created, signer)


def _manual_claims_section(claims: list[dict[str, Any]]) -> "Section":
    return Section("零星报销 manual claims (paid by this bureau's fund to its insured; not netted)",
                   _yuan_names(MANUAL_CLAIM_COLUMNS), [_yuan_cells(c, MANUAL_CLAIM_COLUMNS) for c in claims])


MANUAL_CLAIM_COLUMNS = ("claim_no", "insutype", "treatment_pool", "hospital_code", "lodged_by", "reason",
                        "person_id_masked", "visit_type", "begntime", "endtime", "medfee_sumamt_fen", "hifp_pay_fen",
                        "hifmi_pay_fen", "maf_pay_fen", "psn_part_amt_fen")


@dataclass(frozen=True)
class Section:
    """One section of a file set: a title, its column headings, its rows (amounts in yuan)."""

    title: str
    columns: tuple[str, ...]
    rows: list[list[Any]]


def _yuan_cells(record: dict[str, Any], columns: Sequence[str]) -> list[Any]:
    return [yuan(record[c]) if c.endswith("_fen") else ("Y" if record[c] is True else "N" if record[c] is False
                                                        else record[c]) for c in columns]


def _sections(header: DayHeader, position: PoolPosition, name: str, funds, bilateral, hospitals, lines,
              totals, advance: dict[str, Any] | None) -> list[Section]:
    pool = position.pool
    about = Section("清算文件 clearing file", ("项目 item", "值 value"), [
        ["统筹区 pool", f"{pool} {name}".strip()], ["清算日 clearing date", header.clearing_date.isoformat()],
        ["清算批次 cycle", header.cycle_id], ["生成时间 generated at", header.generated_at_text],
        ["金额单位 amounts", "元 yuan"], ["净头寸 net position (+ receives / - pays)", yuan(position.net_fen)],
        ["应收 receivable", yuan(totals["receivable_fen"])], ["应付 payable", yuan(totals["payable_fen"])],
        ["明细笔数 lines", totals["settlement_lines"]]])
    fund_columns = ("insutype", "fund_pay_type", "fund_name", "receivable_fen", "payable_fen", "net_fen")
    bilateral_columns = ("counterparty_pool", "counterparty_name", "insutype", "receivable_hifp_pay_fen",
                         "receivable_hifmi_pay_fen", "receivable_maf_pay_fen", "payable_hifp_pay_fen",
                         "payable_hifmi_pay_fen", "payable_maf_pay_fen", "net_fen", "settlement_count")
    hospital_columns = ("hospital_code", "insutype", "settlement_lines", "medfee_sumamt_fen", *SHARE_FIELDS)
    kept = []
    if advance is not None:
        kept = [Section("预付金 advance fund", ("项目 item", "值 value"), [
            ["期初余额 balance before", yuan(advance["balance_before_fen"])],
            ["当日净额 day's net (- draws / + credits)", yuan(advance["day_net_fen"])],
            ["期末余额 balance", yuan(advance["balance_fen"])], ["应备额度 required", yuan(advance["required_fen"])],
            ["预警 warning", "Y" if advance["warning"] else "N"], ["应补缴 top-up due", yuan(advance["top_up_fen"])],
            ["规则 rule", advance["rule"]]])]
    return [
        about,
        *kept,
        Section("基金 funds (each fund moves its own money)", _yuan_names(fund_columns),
                [_yuan_cells(f, fund_columns) for f in funds]),
        Section("双边 bilateral", _yuan_names(bilateral_columns), [_yuan_cells(b, bilateral_columns) for b in bilateral]),
        Section("本地医院 hospitals (receivable, to pay own hospitals)", _yuan_names(hospital_columns),
                [_yuan_cells(h, hospital_columns) for h in hospitals]),
        Section("明细 lines", YUAN_COLUMNS, [_yuan_cells(l, LINE_COLUMNS) for l in lines]),
    ]


def _yuan_names(columns: Sequence[str]) -> tuple[str, ...]:
    return tuple(c.removesuffix("_fen") + "_yuan" if c.endswith("_fen") else c for c in columns)


def _csv(sections: list[Section]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    for n, section in enumerate(sections):
        if n:
            w.writerow([])
        if n == 0:  # the header block: label, value
            w.writerow([section.title])
            w.writerows(section.rows)
            continue
        w.writerow([section.title, *section.columns])
        w.writerows(["", *row] for row in section.rows)
    # A byte-order mark so spreadsheet programs read the Chinese text as UTF-8.
    return "\ufeff".encode("utf-8") + out.getvalue().encode("utf-8")


def _xlsx(sections: list[Section], created: datetime, max_rows: int | None = None) -> bytes:
    """One sheet per section; amounts are numbers shown to the fen. The same content gives the
    same bytes: the workbook's creation time is the close's, not the clock's. A section longer
    than `max_rows` shows its first rows and then says how many more the CSV and JSON hold."""
    sheets = []
    for section in sections:
        amounts = {i for i, c in enumerate(section.columns) if c.endswith("_yuan")}
        labelled = section.columns[-1] == "值 value"  # a label and a value: an amount is one by its text
        rows = section.rows if max_rows is None else section.rows[:max_rows]
        cells: list[list[Any]] = [[section.title], list(section.columns)]
        for row in rows:
            cells.append([Number(value, MONEY) if c in amounts or (labelled and isinstance(value, str)
                                                                  and _is_amount(value))
                          else value if isinstance(value, int) and not isinstance(value, bool) else str(value)
                          for c, value in enumerate(row)])
        if len(rows) < len(section.rows):
            cells.append([f"… {len(section.rows) - len(rows):,} more lines: the CSV and JSON files hold all "
                          f"{len(section.rows):,}"])
        sheets.append(Sheet(section.title.split(" ")[0], cells,
                            bold_rows=frozenset({0, 1} | ({len(cells) - 1} if len(rows) < len(section.rows) else set()))))
    return workbook(sheets, sections[0].title, created.astimezone(SHANGHAI).replace(tzinfo=None))


def _is_amount(text: str) -> bool:
    head, dot, tail = text.lstrip("-").partition(".")
    return bool(dot) and head.isdigit() and len(tail) == 2 and tail.isdigit()


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
           f'aria-label="net position per pool" font-family="{html.escape(CJK_FONTS)}" font-size="12">'
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
<style>body{{font-family:{CJK_FONTS};margin:24px;color:#222}} table{{border-collapse:collapse}}
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
