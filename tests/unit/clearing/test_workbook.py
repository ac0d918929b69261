"""The clearing files' workbook writer, read back by openpyxl (an independent reader of the
format): values, styles, sheet names, awkward text, and the same bytes for the same content."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from decimal import Decimal

import openpyxl
import pytest

from hub.clearing.adapters.workbook import MONEY, Number, Sheet, workbook

CREATED = datetime(2026, 3, 15, 2, 0, 5)


def _open(data: bytes):
    return openpyxl.load_workbook(io.BytesIO(data))


def test_values_styles_and_properties_read_back():
    rows = [["明细 lines"], ["settlement_id", "count", "hifp_pay_yuan"],
            ["S0001", 3, Number("1234.56", MONEY)], ["S0002", -7, Number("-0.05", MONEY)],
            ["S0003", None, Number("12345678901.99", MONEY)]]
    book = _open(workbook([Sheet("明细", rows, bold_rows=frozenset({0, 1}))], "清算文件 clearing file", CREATED))
    assert book.sheetnames == ["明细"]
    sheet = book["明细"]
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [
        ["明细 lines", None, None], ["settlement_id", "count", "hifp_pay_yuan"],
        ["S0001", 3, 1234.56], ["S0002", -7, -0.05], ["S0003", None, 12345678901.99]]
    assert sheet["A1"].font.b and sheet["C2"].font.b and not sheet["A3"].font.b
    assert sheet["C3"].number_format == "#,##0.00" and sheet["B3"].number_format == "General"
    assert sheet.column_dimensions["A"].width == 16
    assert book.properties.title == "清算文件 clearing file" and book.properties.created == CREATED


def test_amounts_are_written_as_their_digits_not_through_a_float():
    data = workbook([Sheet("s", [[Number("0.30", MONEY), Number("9007199254740993.01", MONEY)]])], "t", CREATED)
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        xml = package.read("xl/worksheets/sheet1.xml").decode()
    assert "<v>0.30</v>" in xml and "<v>9007199254740993.01</v>" in xml
    assert Decimal("0.30") == Decimal(str(_open(data)["s"]["A1"].value))


def test_awkward_text_survives_and_sheet_names_are_made_valid_and_unique():
    awkward = ["a < b & c > d", "  leading and trailing  ", "tab\there", "bell\x07char", '"quoted" \'too\'']
    long_name = "x" * 40
    sheets = [Sheet("a/b:c", [awkward]), Sheet(long_name, [["1"]]), Sheet(long_name, [["2"]]), Sheet("A/B:C", [["3"]])]
    book = _open(workbook(sheets, "t", CREATED))
    assert book.sheetnames == ["a_b_c", "x" * 31, "x" * 29 + "~2", "A_B_C~2"]
    got = [c.value for c in book["a_b_c"][1]]
    assert got[:3] == awkward[:3] and got[4] == awkward[4]
    assert got[3] in ("bell\x07char", "bell_x0007_char")  # the control character kept or escaped, not lost
    assert book["x" * 31]["A1"].value == "1" and book["A_B_C~2"]["A1"].value == "3"  # text stays text


def test_the_same_content_gives_the_same_bytes_and_a_change_differs():
    sheet = Sheet("s", [["a", 1, Number("2.00", MONEY)]], bold_rows=frozenset({0}))
    one, two = workbook([sheet], "t", CREATED), workbook([sheet], "t", CREATED)
    assert one == two
    assert workbook([Sheet("s", [["a", 1, Number("2.01", MONEY)]], bold_rows=frozenset({0}))], "t", CREATED) != one
    assert workbook([sheet], "t", CREATED.replace(second=6)) != one


def test_what_cannot_be_written_is_refused():
    with pytest.raises(ValueError, match="at least one sheet"):
        workbook([], "t", CREATED)
    with pytest.raises(ValueError, match="not a decimal number"):
        workbook([Sheet("s", [[Number("1e5", MONEY)]])], "t", CREATED)
    with pytest.raises(ValueError, match="columns"):
        workbook([Sheet("s", [list(range(703))])], "t", CREATED)
