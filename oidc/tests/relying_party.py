"""A tiny, strict OpenID Connect relying party ("Team Wiki") for the browser tests.

It knows only the issuer URL, its client id and its secret. Everything else comes from discovery: it sends
the browser to the authorization endpoint with state, nonce and PKCE S256, takes the code on
http://127.0.0.1:<port>/callback, redeems it at the token endpoint with client_secret_basic (Authlib) and
verifies the ID token against the JWKS (joserfc): RS256, kid, signature, iss, aud, azp, nonce, exp, iat and
at_hash. Whatever it refuses is shown on its page and kept in `errors`, so a test can say why.
"""

import base64
import hashlib
import html
import json
import secrets
import threading
from http.cookies import SimpleCookie
from socketserver import ThreadingMixIn
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

COOKIE = "team_wiki_session"
SCOPE = "openid profile email"
TIMEOUT = 15


class Refused(Exception):
    """Something a strict relying party does not accept; the message is shown on its page."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    # Chromium opens speculative connections; one idle socket must not block the next request.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def _at_hash(access_token):
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


class RelyingParty:
    """Serves on 127.0.0.1 from construction; `client_id` and `client_secret` are set once registered."""

    name = "Team Wiki"

    def __init__(self, issuer, client_id=None, client_secret=None, scope=SCOPE, claims=None):
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.claims = claims  # the OIDC claims request parameter (a dict), sent when set
        self.errors = []
        self.signed_in = []  # verified ID token claims, in order
        self._sessions = {}  # browser cookie -> {"pending": {...}, "claims": {...}}
        self._lock = threading.Lock()
        self._server = make_server(
            "127.0.0.1", 0, self._app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.redirect_uri = f"{self.url}/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # --- talking to the provider ------------------------------------------------------------------

    def _http(self):
        session = requests.Session()
        session.trust_env = False  # no proxy from the environment: loopback only
        return session

    def discover(self):
        response = self._http().get(f"{self.issuer}/.well-known/openid-configuration", timeout=TIMEOUT)
        if response.status_code != 200:
            raise Refused(f"discovery answered HTTP {response.status_code}")
        config = response.json()
        if config.get("issuer") != self.issuer:
            raise Refused(f"discovery names issuer {config.get('issuer')!r}, not {self.issuer!r}")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not str(config.get(name, "")).startswith(self.issuer + "/"):
                raise Refused(f"discovery's {name} {config.get(name)!r} is not under the issuer")
        if "S256" not in config.get("code_challenge_methods_supported", []):
            raise Refused("the provider does not support PKCE S256")
        return config

    def _oauth(self, config):
        session = OAuth2Session(
            client_id=self.client_id,
            client_secret=self.client_secret,
            token_endpoint_auth_method="client_secret_basic",
            scope=self.scope,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            token_endpoint=config["token_endpoint"],
        )
        session.trust_env = False
        return session

    def verify_id_token(self, config, id_token, *, nonce, access_token):
        response = self._http().get(config["jwks_uri"], timeout=TIMEOUT)
        if response.status_code != 200:
            raise Refused(f"JWKS answered HTTP {response.status_code}")
        jwks = response.json()
        try:
            token = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256"])
        except (JoseError, ValueError) as exc:
            raise Refused(f"ID token signature: {exc}") from exc
        if token.header.get("alg") != "RS256":
            raise Refused(f"ID token alg {token.header.get('alg')!r}")
        kids = [key.get("kid") for key in jwks.get("keys", [])]
        if kids.count(token.header.get("kid")) != 1:
            raise Refused("the ID token's kid does not name exactly one published key")
        claims = token.claims
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
            azp={"essential": True, "value": self.client_id},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise Refused(f"ID token claims: {exc}") from exc
        if isinstance(claims["aud"], list) and len(claims["aud"]) > 1 and claims.get("azp") != self.client_id:
            raise Refused("several audiences and azp is not this client")
        if "at_hash" in claims and claims["at_hash"] != _at_hash(access_token):
            raise Refused("at_hash does not match the access token")
        if not isinstance(claims.get("amr"), list):
            raise Refused("amr is not a list")
        return claims

    # --- the web app ------------------------------------------------------------------------------

    def _app(self, environ, start_response):
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        sid = cookie[COOKIE].value if COOKIE in cookie else None
        with self._lock:
            if sid not in self._sessions:
                sid = secrets.token_urlsafe(16)
                self._sessions[sid] = {}
            session = self._sessions[sid]
        headers = [("Set-Cookie", f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax")]
        path = environ.get("PATH_INFO", "/")
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        try:
            if path == "/":
                return self._home(session, headers, start_response)
            if path == "/login":
                return self._login(session, headers, start_response)
            if path == "/callback":
                return self._callback(session, query, environ, headers, start_response)
            return self._page(start_response, "404 Not Found", headers, "Not found", "<p>No such page.</p>")
        except Refused as exc:
            self.errors.append(str(exc))
            body = f'<p id="error">Sign-in failed: {html.escape(str(exc))}</p><p><a href="/login">Try again</a></p>'
            return self._page(start_response, "400 Bad Request", headers, "Sign-in failed", body)

    def _page(self, start_response, status, headers, title, body):
        page = (
            f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)} - {self.name}</title>"
            "<style>body{font-family:sans-serif;margin:3em auto;max-width:40em}"
            "a.button{background:#1d4ed8;color:#fff;padding:.6em 1.2em;border-radius:4px;text-decoration:none}"
            f"</style></head><body><h1>{self.name}</h1>{body}</body></html>"
        ).encode()
        start_response(status, [*headers, ("Content-Type", "text/html; charset=utf-8")])
        return [page]

    def _redirect(self, start_response, headers, location):
        start_response("302 Found", [*headers, ("Location", location)])
        return [b""]

    def _home(self, session, headers, start_response):
        claims = session.get("claims")
        if not claims:
            body = '<p>You are not signed in.</p><p><a class="button" href="/login">Sign in with Dockspace</a></p>'
            return self._page(start_response, "200 OK", headers, "Welcome", body)
        who = html.escape(claims.get("email") or claims["sub"])
        amr = html.escape(" ".join(claims.get("amr", [])))
        body = f'<p id="signed-in">Signed in as {who} (amr: {amr})</p>'
        return self._page(start_response, "200 OK", headers, "Signed in", body)

    def _login(self, session, headers, start_response):
        config = self.discover()
        state, nonce, verifier = (secrets.token_urlsafe(24) for _ in range(3))
        extra = {"claims": json.dumps(self.claims)} if self.claims else {}
        url, _state = self._oauth(config).create_authorization_url(
            config["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier, **extra
        )
        session["pending"] = {"state": state, "nonce": nonce, "verifier": verifier, "config": config}
        session.pop("claims", None)
        return self._redirect(start_response, headers, url)

    def _callback(self, session, query, environ, headers, start_response):
        pending = session.pop("pending", None)
        if pending is None:
            raise Refused("a callback this browser did not start")
        if query.get("state") != pending["state"]:
            raise Refused("state does not match")
        if query.get("iss") != self.issuer:  # RFC 9207: the provider names itself in the response
            raise Refused(f"iss in the authorization response is {query.get('iss')!r}")
        if "error" in query:
            raise Refused(f"the provider answered {query['error']}: {query.get('error_description', '')}")
        config = pending["config"]
        callback_url = f"{self.redirect_uri}?{environ.get('QUERY_STRING', '')}"
        try:
            tokens = self._oauth(config).fetch_token(
                config["token_endpoint"],
                authorization_response=callback_url,
                state=pending["state"],
                code_verifier=pending["verifier"],
                timeout=TIMEOUT,
            )
        except Exception as exc:  # Authlib raises its own errors and requests' alike; the page names them
            raise Refused(f"token endpoint: {type(exc).__name__}: {exc}") from exc
        if tokens.get("token_type", "").lower() != "bearer" or "id_token" not in tokens:
            raise Refused("the token response has no bearer access token and ID token")
        claims = self.verify_id_token(
            config, tokens["id_token"], nonce=pending["nonce"], access_token=tokens["access_token"]
        )
        session["claims"] = claims
        self.signed_in.append(claims)
        return self._redirect(start_response, headers, "/")
