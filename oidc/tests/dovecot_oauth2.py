"""A private Dovecot 2.3 set up as docker-mailserver sets it up with ENABLE_OAUTH2=1: the passwd-file passdb and
userdb DMS builds from postfix-accounts.cf, plus the oauth2 passdb (XOAUTH2, OAUTHBEARER) that asks an
introspection URL about every token. Built on mail/tests/dovecot_server.py, which runs the plain DMS Dovecot."""

import base64
import imaplib
import os
import socket

from mail.tests.dovecot_server import running_dovecot

_TIMEOUT = 10


def dms_oauth2_conf(introspection_url, introspection_mode="auth"):
    """DMS's target/dovecot/dovecot-oauth2.conf.ext after `_replace_by_env_in_file 'OAUTH2_'` filled
    OAUTH2_INTROSPECTION_URL (and OAUTH2_INTROSPECTION_MODE, the only other key the file has)."""
    return (
        f"introspection_url = {introspection_url}\n"
        "# Dovecot defaults:\n"
        f"introspection_mode = {introspection_mode}\n"
        "username_attribute = email\n"
    )


def _with_oauth2_passdb(config, oauth2_conf_path):
    """DMS's auth-oauth2.conf.ext: two more SASL mechanisms and a second passdb only they reach."""
    plain = "auth_mechanisms = plain login\n"
    if plain not in config:
        raise RuntimeError("mail/tests/dovecot_server.py changed its auth_mechanisms line; update this helper")
    config = config.replace(plain, "auth_mechanisms = plain login oauthbearer xoauth2\nauth_verbose = yes\n")
    return (
        f"{config}\npassdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {oauth2_conf_path}\n}}\n"
    )


def running_dovecot_with_oauth2(accounts_text, *, introspection_url, introspection_mode="auth"):
    """Start Dovecot on 127.0.0.1 with DMS's passwd-file auth and its oauth2 passdb; stop it after.

    Callers skip first with skip_unless_dovecot_23() and skip_unless_protocol("imap").
    """

    def add_oauth2(root, config):
        oauth2_conf_path = root / "dovecot-oauth2.conf.ext"
        oauth2_conf_path.write_text(dms_oauth2_conf(introspection_url, introspection_mode))
        oauth2_conf_path.chmod(0o644)
        return _with_oauth2_passdb(config, oauth2_conf_path)

    return running_dovecot(accounts_text, extend_config=add_oauth2)


def xoauth2(address, token):
    """The XOAUTH2 initial response (Google's format, what Roundcube and Thunderbird send)."""
    return f"user={address}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(address, token, port):
    """The RFC 7628 OAUTHBEARER initial response."""
    return f"n,a={address},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


def imap_authenticate(server, mechanism, initial_response):
    """AUTHENTICATE over IMAP with imaplib; returns (logged in?, the server's tagged answer)."""
    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=_TIMEOUT)
    try:
        # A failed SASL exchange gets a "+ <error JSON>" challenge first; answer it with an empty line.
        answers = iter([initial_response, b""])
        typ, data = client.authenticate(mechanism, lambda _challenge: next(answers, b""))
        return typ == "OK", b" ".join(d for d in data if d).decode(errors="replace")
    except imaplib.IMAP4.error as exc:
        return False, str(exc)
    finally:
        client.shutdown()


def sasl_auth(server, mechanism, initial_response, *, service="smtp"):
    """One AUTH on Dovecot's auth-client socket, as Postfix's SMTP AUTH sends it; True when Dovecot says OK."""
    encoded = base64.b64encode(initial_response).decode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(_TIMEOUT)
        conn.connect(str(server.auth_client_socket))
        stream = conn.makefile("rwb")
        stream.write(f"VERSION\t1\t2\nCPID\t{os.getpid()}\n".encode())
        stream.flush()
        while (line := stream.readline()) and line.rstrip(b"\n") != b"DONE":
            pass
        stream.write(
            f"AUTH\t1\t{mechanism}\tservice={service}\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tsecured"
            f"\tresp={encoded}\n".encode()
        )
        stream.flush()
        reply = stream.readline().decode().rstrip("\n").split("\t")
        if reply[0] == "CONT":
            # The mechanism sent an error challenge; the client's empty answer ends the exchange.
            stream.write(b"CONT\t1\t\n")
            stream.flush()
            reply = stream.readline().decode().rstrip("\n").split("\t")
    if reply[0] not in ("OK", "FAIL"):
        raise RuntimeError(f"unexpected auth reply {reply!r}\n{server.log_tail()}")
    return reply[0] == "OK"
