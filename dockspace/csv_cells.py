"""One rule for every CSV Dockspace writes: a cell that a spreadsheet would run as a formula is written
with a leading apostrophe (OWASP "CSV injection"). Used by the audit-log export and `mailbox export`."""

import csv

# A formula starts with = + - @; a leading tab or carriage return is stripped by some programs first.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """VALUE as the text of a CSV cell that no spreadsheet evaluates (None is an empty cell)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell_value(text):
    """The inverse of csv_cell for a file Dockspace wrote: drops the apostrophe added before a formula start."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


class SafeCsvWriter:
    """csv.writer whose rows go through csv_cell."""

    def __init__(self, stream, **kwargs):
        self._writer = csv.writer(stream, **kwargs)

    def writerow(self, row):
        return self._writer.writerow([csv_cell(value) for value in row])
