"""One rule for every CSV Dockspace writes: a cell that a spreadsheet would run as a formula is written
with a leading apostrophe (OWASP "CSV injection"). Used by the audit-log export and `mailbox export`;
`mailbox import` undoes it (csv_cell_value), so an exported file imports back as it was."""

import csv

# A formula starts with = + - @; a leading tab or carriage return is stripped by some programs first.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A value that itself starts with an apostrophe gets one more, so that reading a cell back is never a guess:
# "'=x" (a name typed so) is written "''=x" and read back as "'=x", not as "=x".
_PROTECTED_STARTS = (*FORMULA_STARTS, "'")


def csv_cell(value):
    """VALUE as the text of a CSV cell that no spreadsheet evaluates (None is an empty cell)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_PROTECTED_STARTS) else text


def csv_cell_value(text):
    """The inverse of csv_cell for a file Dockspace wrote: drops the apostrophe csv_cell added."""
    return text[1:] if text.startswith("'") and text[1:].startswith(_PROTECTED_STARTS) else text


class SafeCsvWriter:
    """csv.writer whose rows go through csv_cell."""

    def __init__(self, stream, **kwargs):
        self._writer = csv.writer(stream, **kwargs)

    def writerow(self, row):
        return self._writer.writerow([csv_cell(value) for value in row])
