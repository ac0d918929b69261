"""Files the convention moves beside the envelope (DESIGN.md 2.1, the hospital interface):

- 9101 uploads a file (a hospital's 3202 detail file), answering its `file_qury_no`;
- 9102 downloads a file by `file_qury_no` — one the hospital uploaded or the hub made for it
  (a 3202 result, a 1301-1307 catalogue) — as the file's own bytes, not an envelope;
- 1301-1307 answer the `file_qury_no` of a catalogue as a file (the treatment pool's, in the
  hub's columns; see CATALOGUE_COLUMNS).

Files are zip archives holding one tab-separated UTF-8 text file, as the platform's are. What
is parsed here is pure: the service layer stores and fetches through the repository.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from datetime import datetime, timedelta

from hub.reference.catalogue import Catalogue, ItemClass
from hub.settlement.adapters.repository import StoredFile

__all__ = ["StoredFile", "FileError"]  # StoredFile: the record a file is kept as (the repository's)
from hub.settlement.domain.money import AmountError, yuan_to_fen
from hub.settlement.service_layer.reasons import Why

MAX_FILE_BYTES = 4 * 1024 * 1024  # as uploaded (zipped)
MAX_TEXT_BYTES = 64 * 1024 * 1024  # unzipped: a zip that inflates beyond this is refused
MAX_DETAIL_ROWS = 500_000
DOWNLOAD_HOURS = 24  # dld_endtime: how long a file the hub made stays downloadable (a reading)
CATALOGUE_PREFIX = "CAT"  # a catalogue file's file_qury_no: CAT-<infno>-<pool>-<version, hex>-<since, hex>
# 1301-1307 as the convention numbers its catalogues, and the item kind of the hub's catalogue
# each carries (None: the hub's catalogues hold no such items; the file is empty).
CATALOGUE_DOWNLOADS = {"1301": "DRUG", "1302": None, "1303": None, "1304": None, "1305": "SERVICE",
                       "1306": "MATERIAL", "1307": None}
CATALOGUE_COLUMNS = ("med_list_codg", "name", "item_kind", "chrgitm_lv", "selfpay_prop", "pric_uplmt_amt",
                     "over_cap_rule", "bas_medn_flag", "ver")
DETAIL_COLUMNS = ("setl_id", "mdtrt_id", "psn_no", "medfee_sumamt", "fund_pay_sumamt", "acct_pay", "refd_setl_flag")
CHRGITM_LV = {ItemClass.JIA: "01", ItemClass.YI: "02", ItemClass.BING: "03"}  # 甲 乙 丙


class FileError(Exception):
    def __init__(self, reason: Why, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def upload_content(node: dict) -> tuple[str, bytes]:
    """9101's `fsUploadIn`: (filename, bytes). `in` is the file as HIS code serialises a byte
    array: a base64 string (Java's and .NET's JSON libraries) or a list of byte values."""
    filename, raw = node.get("filename"), node.get("in")
    if not isinstance(filename, str) or not 1 <= len(filename) <= 200 or "/" in filename or "\\" in filename:
        raise FileError(Why.INVALID_FIELD, "fsUploadIn.filename: the file's name, at most 200 characters")
    if isinstance(raw, str):
        try:
            content = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise FileError(Why.INVALID_FIELD, "fsUploadIn.in: the file's bytes, base64") from None
    elif isinstance(raw, list) and all(isinstance(b, int) and not isinstance(b, bool) and -128 <= b <= 255 for b in raw):
        content = bytes(b & 0xFF for b in raw)  # Java bytes are signed
    else:
        raise FileError(Why.INVALID_FIELD, "fsUploadIn.in: the file's bytes, base64 or a list of byte values")
    if not content or len(content) > MAX_FILE_BYTES:
        raise FileError(Why.INVALID_FIELD, f"fsUploadIn.in: 1 to {MAX_FILE_BYTES} bytes")
    return filename, content


def zipped(name: str, text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text.encode("utf-8"))
    return out.getvalue()


def text_of(content: bytes) -> str:
    """A file's text: the one member of a zip archive, or the bytes themselves; UTF-8."""
    if content[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) != 1 or members[0].file_size > MAX_TEXT_BYTES:
                    raise FileError(Why.INVALID_FIELD, f"the zip holds one text file of at most {MAX_TEXT_BYTES} bytes")
                with archive.open(members[0]) as member:
                    content = member.read(MAX_TEXT_BYTES + 1)
        except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as exc:
            raise FileError(Why.INVALID_FIELD, f"the file is not a readable zip: {exc}") from None
        if len(content) > MAX_TEXT_BYTES:
            raise FileError(Why.INVALID_FIELD, f"the zip inflates beyond {MAX_TEXT_BYTES} bytes")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileError(Why.INVALID_FIELD, "the file is not UTF-8 text") from None


def detail_rows(text: str) -> dict[str, tuple[int, int]]:
    """A 3202 detail file: one settlement a line, tab-separated DETAIL_COLUMNS (a header line
    naming them is skipped). Rows with refd_setl_flag 1 (refunded) do not stand at the hospital.
    -> {setl_id: (medfee_sumamt, fund_pay_sumamt)} in fen."""
    rows: dict[str, tuple[int, int]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or (n == 1 and line.startswith(DETAIL_COLUMNS[0])):
            continue
        if len(rows) >= MAX_DETAIL_ROWS:
            raise FileError(Why.INVALID_FIELD, f"the detail file holds more than {MAX_DETAIL_ROWS} settlements")
        cells = line.split("\t")
        if len(cells) < 5:
            raise FileError(Why.INVALID_FIELD, f"line {n}: {', '.join(DETAIL_COLUMNS)} separated by tabs")
        if len(cells) >= 7 and cells[6].strip() == "1":
            continue
        try:
            rows[cells[0].strip()] = (yuan_to_fen(cells[3].strip(), f"line {n} medfee_sumamt"),
                                      yuan_to_fen(cells[4].strip(), f"line {n} fund_pay_sumamt"))
        except AmountError as exc:
            raise FileError(Why.INVALID_AMOUNT, str(exc)) from None
    return rows


def result_text(rows: list[dict]) -> str:
    """The 3202 result file: the differences, one a line (stmt_rslt 1: not matched; memo: why)."""
    columns = ("setl_id", "stmt_rslt", "memo", "hub_medfee_sumamt", "hub_fund_pay_sumamt")
    lines = ["\t".join(columns)]
    lines += ["\t".join((r["setl_id"], "1", r["reason"], r.get("hub_medfee_sumamt", ""), r.get("hub_fund_pay_sumamt", "")))
              for r in rows]
    return "\n".join(lines) + "\n"


def catalogue_codes(catalogue: Catalogue | None, kind: str | None, since_version: str) -> list[str]:
    """The codes a 1301-1307 file lists: the pool's items of `kind`, in code order, unless the
    hospital already holds this version (`ver` given and equal)."""
    if catalogue is None or kind is None or since_version == catalogue.catalogue_version:
        return []
    return sorted(code for code, item in catalogue.items.items() if item.item_kind == kind)


def catalogue_text(catalogue: Catalogue | None, codes: list[str]) -> str:
    """A 1301-1307 catalogue file's text: a header, then the items `catalogue_codes` chose."""
    lines = ["\t".join(CATALOGUE_COLUMNS)]
    for code in codes:
        item = catalogue.items[code]
        cap = "" if item.price_cap_fen is None else f"{item.price_cap_fen // 100}.{item.price_cap_fen % 100:02d}"
        share = f"{item.self_pay_first_bp / 10000:.4f}" if item.item_class is ItemClass.YI else (
            "1.0000" if item.item_class is ItemClass.BING else "0.0000")
        lines.append("\t".join((code, item.item_name, item.item_kind, CHRGITM_LV[item.item_class], share, cap,
                                item.over_cap_rule.value, "1" if item.essential_drug else "0",
                                catalogue.catalogue_version)))
    return "\n".join(lines) + "\n"


def catalogue_query_no(infno: str, pool: str, version: str, since: str) -> str:
    """Made, not stored: the file is built again from the catalogue when it is downloaded."""
    return f"{CATALOGUE_PREFIX}-{infno}-{pool}-{version.encode().hex()}-{since.encode().hex()}"


def parse_catalogue_query_no(file_qury_no: str) -> tuple[str, str, str, str] | None:
    parts = file_qury_no.split("-")
    if len(parts) != 5 or parts[0] != CATALOGUE_PREFIX or parts[1] not in CATALOGUE_DOWNLOADS:
        return None
    try:
        return parts[1], parts[2], bytes.fromhex(parts[3]).decode(), bytes.fromhex(parts[4]).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def download_end(now: datetime) -> str:
    return (now + timedelta(hours=DOWNLOAD_HOURS)).strftime("%Y-%m-%d %H:%M:%S")
