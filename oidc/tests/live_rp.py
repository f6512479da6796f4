"""A strict relying party (Authlib + joserfc) and a scripted browser (requests) for live-server tests."""

import html.parser
import secrets
from urllib.parse import urljoin

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet

CALLBACK = "http://127.0.0.1:9/callback"  # never contacted: the browser stops when sent there


class _Forms(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"id": attrs.get("id"), "action": attrs.get("action"), "fields": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or ""


def forms_of(page_html):
    parser = _Forms()
    parser.feed(page_html)
    return parser.forms


class Browser:
    """Walks Dockspace's real pages: follows redirects inside the site, stops at the app's callback."""

    def __init__(self, base):
        self.base = base
        self.http = requests.Session()
        self.last = None

    def go(self, url, method="get", data=None):
        response = self.http.request(method, urljoin(self.base, url), data=data, allow_redirects=False, timeout=30)
        while response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if not location.startswith(self.base):
                self.last = response
                return location
            response = self.http.get(location, allow_redirects=False, timeout=30)
        self.last = response
        return response

    def submit(self, response, data, form_id=None):
        # The page's own form posts to itself; the top bar's sign-out form has an action.
        form = next(f for f in forms_of(response.text) if (f["id"] == form_id if form_id else not f["action"]))
        fields = {**form["fields"], **data}
        return self.go(form["action"] or response.url, "post", fields)

    def sign_in(self, email, password, code=None, start="/login/"):
        page = self.go(start)
        result = self.submit(page, {"email": email, "password": password})
        if code is not None and not isinstance(result, str) and "code" in result.text:
            result = self.submit(result, {"code": code()})
        return result


class RelyingParty:
    """Configured with the issuer URL, a client id and a secret only; checks what a strict client checks."""

    def __init__(self, issuer, client_id, client_secret=None, scope="openid profile email groups"):
        self.issuer = issuer
        self.discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope

    def session(self):
        return OAuth2Session(
            self.client_id,
            self.client_secret,
            scope=self.scope,
            redirect_uri=CALLBACK,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if self.client_secret else "none",
        )

    def start(self, **extra):
        """(authorization URL, what the RP remembers for the callback)."""
        oauth = self.session()
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(16)
        url, state = oauth.create_authorization_url(
            self.discovery["authorization_endpoint"], nonce=nonce, code_verifier=verifier, **extra
        )
        return url, {"state": state, "nonce": nonce, "verifier": verifier, "max_age": extra.get("max_age")}

    def finish(self, callback_url, remembered):
        oauth = self.session()
        oauth.state = remembered["state"]
        token = oauth.fetch_token(
            self.discovery["token_endpoint"],
            authorization_response=callback_url,
            code_verifier=remembered["verifier"],
            state=remembered["state"],
        )
        claims = self.verify_id_token(
            token["id_token"],
            nonce=remembered["nonce"],
            access_token=token["access_token"],
            max_age=remembered["max_age"],
        )
        return token, claims

    def jwks(self):
        return requests.get(self.discovery["jwks_uri"], timeout=10).json()

    def verify_id_token(self, id_token, nonce=None, access_token=None, max_age=None):
        jwks = self.jwks()
        decoded = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256"])
        header = decoded.header
        assert header["alg"] == "RS256"
        assert [k["kid"] for k in jwks["keys"]].count(header["kid"]) == 1
        claims = CodeIDToken(
            decoded.claims,
            header,
            options={
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.client_id},
            },
            params={"nonce": nonce, "client_id": self.client_id, "access_token": access_token, "max_age": max_age},
        )
        claims.validate()
        assert claims["azp"] == self.client_id
        assert isinstance(claims["amr"], list)
        if max_age is not None:
            assert isinstance(claims["auth_time"], int)
        return dict(claims)

    def refresh(self, refresh_token):
        oauth = self.session()
        return oauth.refresh_token(self.discovery["token_endpoint"], refresh_token=refresh_token)

    def raw_token_request(self, **data):
        return requests.post(
            self.discovery["token_endpoint"],
            data=data,
            auth=(self.client_id, self.client_secret) if self.client_secret else None,
            timeout=10,
        )

    def userinfo(self, access_token):
        return requests.get(
            self.discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}, timeout=10
        )
