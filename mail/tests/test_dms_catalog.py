"""The catalog of DMS files: what it collects from the apps, what it refuses, and the answers the sync,
the writer, the history and the signals read from it."""

import dataclasses

import pytest
from django.core.exceptions import ImproperlyConfigured

from mail.dms import catalog
from mail.dms.catalog import HEADER, DmsFile, DmsFileSet
from mail.dms.mail_files import MAIL_FILES
from mail.models import Alias, AliasTarget, DkimKey, Domain, Group, Mailbox


def _file(path, **kwargs):
    return DmsFile(path=path, collect=lambda reads: (), render=lambda rows, on_skip: rows, parse=None, **kwargs)


def test_mail_declares_its_files_in_the_order_operators_read_them():
    names = [item.name for item in catalog.declared_files() if item.app_label == "mail"]
    assert names == [
        "postfix-accounts.cf",
        "postfix-virtual.cf",
        "dovecot-quotas.cf",
        "postfix-send-access.cf",
        "postfix-receive-access.cf",
        "the DKIM files",
    ]


def test_the_hint_names_the_files_as_before_when_only_mail_declares_them(monkeypatch):
    monkeypatch.setattr(catalog, "declared_files", lambda: MAIL_FILES)
    assert catalog.files_hint() == (
        "Files: postfix-accounts.cf, postfix-virtual.cf, dovecot-quotas.cf, postfix-send-access.cf, "
        "postfix-receive-access.cf, and the DKIM files."
    )


def test_every_mail_model_that_a_file_is_made_of_schedules_a_sync():
    models = catalog.sync_models()
    for model in (Domain, Mailbox, Alias, AliasTarget, Group, Group.members.through, DkimKey):
        assert model in models
    assert len(models) == len(set(models))


@pytest.mark.parametrize(
    ("path", "mode", "secret", "guarded"),
    [
        ("postfix-accounts.cf", 0o600, False, True),
        ("postfix-virtual.cf", 0o644, False, True),
        ("dovecot-quotas.cf", 0o644, False, True),
        ("postfix-send-access.cf", 0o644, False, True),
        ("postfix-receive-access.cf", 0o644, False, True),
        ("opendkim/keys/x.io/mail.private", 0o640, True, False),
        ("opendkim/keys/x.io/mail.txt", 0o644, False, False),
        ("opendkim/KeyTable", 0o644, False, False),
        ("rspamd/dkim/rsa-2048-mail-x.io.private.txt", 0o640, True, False),
        ("rspamd/override.d/dkim_signing.conf", 0o644, False, True),
        ("postfix-regexp.cf", 0o644, False, False),
    ],
)
def test_modes_secrets_and_guards_come_from_the_declarations(path, mode, secret, guarded):
    assert catalog.file_mode(path) == mode
    assert catalog.is_secret(path) is secret
    assert (path in catalog.guarded_paths()) is guarded


def test_only_the_account_lines_are_redacted_in_a_diff():
    assert catalog.redact_line("postfix-accounts.cf", "a@x.io|{SHA512-CRYPT}$6$s$h\n") == "a@x.io|{SHA512-CRYPT}…\n"
    assert catalog.redact_line("postfix-virtual.cf", "a@x.io|b\n") == "a@x.io|b\n"
    assert catalog.redact_line("not-ours.cf", "a|b\n") == "a|b\n"


def test_only_opendkim_changes_ask_for_a_restart():
    assert catalog.restart_reason(["postfix-accounts.cf", "rspamd/override.d/dkim_signing.conf"]) == ""
    assert "Recreate the mailserver container" in catalog.restart_reason(["postfix-virtual.cf", "opendkim/KeyTable"])


def test_what_the_dms_directory_holds_of_dockspace():
    assert {"postfix-accounts.cf", "dovecot-quotas.cf", "opendkim", "rspamd"} <= catalog.top_level_names()
    assert "postfix-regexp.cf" not in catalog.top_level_names()


def test_the_one_renderer_streams_files_sorted_by_path_and_renders_sets_at_once():
    reported = []
    declared = [
        _file("b.cf", header="# b\n"),
        _file("a.cf"),
        DmsFileSet(
            name="the c files",
            directories=("c",),
            collect=lambda reads: None,
            render=lambda rows, on_skip: on_skip("set first") or {"c/1": b"one\n"},
            parse=None,
        ),
    ]
    rows = {"a.cf": ("x", "y"), "b.cf": (), "the c files": None}
    files = catalog.render(declared, lambda item: rows[item.name], reported.append)
    assert list(files) == ["a.cf", "b.cf", "c/1"]
    assert callable(files["a.cf"]) and files["c/1"] == b"one\n"
    assert reported == ["set first"]
    assert b"".join(files["a.cf"]()) == b"".join(files["a.cf"]()) == HEADER.encode() + b"x\ny\n"
    assert catalog.materialised(files)["b.cf"] == b"# b\n"


@pytest.mark.parametrize(
    "second",
    [
        _file("postfix-accounts.cf"),
        _file("opendkim/extra.conf"),
        DmsFileSet(name="x", directories=("rspamd",), collect=None, render=None, parse=None),
    ],
)
def test_two_declarations_of_one_file_are_refused(second):
    declared = [dataclasses.replace(item, app_label="mail") for item in MAIL_FILES]
    with pytest.raises(ImproperlyConfigured, match="both declare the DMS file"):
        catalog._check_distinct([*declared, dataclasses.replace(second, app_label="other")])


def test_an_app_that_returns_something_else_is_refused(monkeypatch):
    from django.apps import apps

    config = apps.get_app_config("mail")
    monkeypatch.setattr(config, "dms_files", lambda: ["postfix-main.cf"], raising=False)
    catalog.declared_files.cache_clear()
    try:
        with pytest.raises(ImproperlyConfigured, match="not a DmsFile"):
            catalog.declared_files()
    finally:
        monkeypatch.undo()
        catalog.declared_files.cache_clear()
