"""An existing DMS config directory, read for adoption (mail.dms.adoption): the texts of the files whose lines
become Dockspace rows, the entries Dockspace never writes (left alone), and the files of the catalog it would
replace without adopting them (DKIM setups, other apps' files), each reported with why."""

import os
from pathlib import Path

from mail.dms import catalog
from mail.dms.parse import Problem
from mail.dms.render import (
    ACCOUNTS_PATH,
    OPENDKIM_DIR,
    QUOTAS_PATH,
    RECEIVE_ACCESS_PATH,
    RSPAMD_SIGNING_CONF_PATH,
    SEND_ACCESS_PATH,
    VIRTUAL_PATH,
)

# The files whose lines become Dockspace rows; DKIM files are reported on their own (see _dkim_problems), and
# any other file of the catalog as a whole (see _declared_problems).
FILES = (ACCOUNTS_PATH, QUOTAS_PATH, VIRTUAL_PATH, SEND_ACCESS_PATH, RECEIVE_ACCESS_PATH)
OPENDKIM_KEY_TABLE = f"{OPENDKIM_DIR}/KeyTable"


class DmsDirectoryError(Exception):
    """The directory cannot be read at all; nothing was looked at."""


def read_dms_directory(directory):
    """{file name: text} for the account, quota and alias files of a DMS config directory (a missing
    file reads as empty), plus problems for lines that are not UTF-8. Raises DmsDirectoryError."""
    root = Path(directory)
    if not root.exists():
        raise DmsDirectoryError(f"--from: {directory} does not exist.")
    if not root.is_dir():
        raise DmsDirectoryError(f"--from: {directory} is not a directory.")
    try:
        present = {entry.name for entry in os.scandir(root)}
    except OSError as e:
        raise DmsDirectoryError(f"--from: cannot read {directory}: {e.strerror or e}.") from None
    if not present.intersection(FILES):
        raise DmsDirectoryError(
            f"--from: {directory} holds none of {', '.join(FILES)}; give DMS's config directory "
            "(the one mounted at /tmp/docker-mailserver in the container)."
        )
    texts, problems = {}, []
    for name in FILES:
        if name not in present:
            texts[name] = ""
            continue
        try:
            data = (root / name).read_bytes()
        except OSError as e:
            raise DmsDirectoryError(f"--from: cannot read {root / name}: {e.strerror or e}.") from None
        texts[name] = _decode_lines(name, data, problems)
    return texts, problems


def _decode_lines(name, data, problems):
    """Text with every line that is not UTF-8 blanked out (and reported), so line numbers still match."""
    lines = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            problems.append(Problem(name, number, "", "not UTF-8 text"))
            lines.append("")
    return "\n".join(lines)


def files_left_alone(directory):
    """The entries of the DMS directory that Dockspace never writes (none of the catalog's), such as
    postfix-regexp.cf, postfix-relaymap.cf or postfix-sasl-password.cf: they keep working as they are."""
    names = []
    written = catalog.top_level_names()
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.name in written or entry.name.endswith(".lock"):
            continue
        names.append(entry.name + ("/" if entry.is_dir() else ""))
    return names


def _foreign_text(root, path):
    """The text of a file Dockspace would replace that holds lines it did not write, else None."""
    try:
        text = (root / path).read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    if text.startswith(catalog.header_of(path)):
        return None
    return text if any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()) else None


def _declared_problems(directory):
    """Other files of the catalog (another app's) are not adopted: say which hold lines taking over replaces."""
    root, problems = Path(directory), []
    for declared in catalog.declared_files():
        if not isinstance(declared, catalog.DmsFile) or declared.path in FILES or not declared.guarded:
            continue
        text = _foreign_text(root, declared.path)
        if text is None:
            continue
        entries, _problems = declared.parse(text, declared.path)
        reason = (
            f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} not adopted: import_dms_files adopts "
            f"{', '.join(FILES)} only; taking over replaces this file with what Dockspace's database says"
        )
        problems.append(Problem(declared.path, None, "", reason))
    return problems


def _dkim_problems(directory):
    """DKIM keys are not adopted: say which DMS files hold signing setup that Dockspace would replace."""
    root, problems = Path(directory), []
    if _foreign_text(root, RSPAMD_SIGNING_CONF_PATH) is not None:
        reason = (
            "DKIM signing settings are not adopted: taking over replaces this file with Dockspace's, which signs "
            "only for domains with a DKIM key in Dockspace (manage.py dkim generate, then publish the DNS record)"
        )
        problems.append(Problem(RSPAMD_SIGNING_CONF_PATH, None, "", reason))
    if _foreign_text(root, OPENDKIM_KEY_TABLE) is not None:
        reason = (
            "DKIM keys are not adopted: once a domain has a DKIM key in Dockspace, KeyTable and SigningTable are "
            "rewritten with Dockspace's keys only (manage.py dkim generate for each domain, then publish the DNS "
            "records)"
        )
        problems.append(Problem(OPENDKIM_KEY_TABLE, None, "", reason))
    return problems


def files_not_adopted(directory):
    """Problems for the files Dockspace would replace although their lines are not adopted."""
    return _dkim_problems(directory) + _declared_problems(directory)
