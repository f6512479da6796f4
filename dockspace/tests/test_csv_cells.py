"""Finding 9: one CSV cell rule for every export: a cell a spreadsheet would evaluate gets an apostrophe.
The exports that use it are tested with them (mail/tests/test_csv_io.py, accounts/tests/test_admin.py)."""

import pytest

from dockspace.csv_cells import csv_cell, csv_cell_value


@pytest.mark.parametrize(
    "value, cell",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("'=1", "''=1"),
        ("'Ann", "''Ann"),
        ("'", "''"),
        ("Ann Lee", "Ann Lee"),
        ("O'Brien", "O'Brien"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (5, "5"),
    ],
)
def test_a_cell_is_neutralised_only_when_it_starts_like_a_formula(value, cell):
    assert csv_cell(value) == cell
    assert csv_cell_value(cell) == ("" if value is None else str(value))
