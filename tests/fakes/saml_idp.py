"""A SAML 2.0 identity provider on loopback for tests: pysaml2's ``Server`` behind a tiny WSGI app.

``GET /sso?SAMLRequest=...&RelayState=...`` (HTTP-Redirect binding) answers an HTML form that posts a
signed (RSA-SHA256, SHA-256 digests) assertion for ``idp.user`` to the SP's ACS URL, like Okta does.
:meth:`FakeIdP.response` builds a response directly, and :func:`resign` lets attack tests edit an
assertion and sign it again with the IdP's key (or a foreign one)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"saml": SAML, "samlp": SAMLP, "ds": DS}


@dataclass
class KeyPair:
    key_pem: str
    cert_pem: str


def keypair(cn: str = "Test IdP") -> KeyPair:
    """A fresh RSA key and a self-signed certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    return KeyPair(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                     serialization.NoEncryption()).decode(),
                   cert.public_bytes(serialization.Encoding.PEM).decode())


@dataclass
class FakeIdP:
    base_url: str
    keys: KeyPair
    sp_metadata: str
    user: dict[str, Any] = field(default_factory=lambda: {"email": "alice@idp.test", "groups": ["Engineering"]})
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="levqor-idp-")))
    _server: Any = None

    @property
    def entity_id(self) -> str:
        return f"{self.base_url}/metadata"

    @property
    def sso_url(self) -> str:
        return f"{self.base_url}/sso"

    def server(self) -> Any:
        if self._server is None:
            from saml2 import BINDING_HTTP_REDIRECT
            from saml2.config import IdPConfig
            from saml2.saml import NAME_FORMAT_BASIC
            from saml2.server import Server
            from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

            (self.workdir / "idp.key").write_text(self.keys.key_pem)
            (self.workdir / "idp.crt").write_text(self.keys.cert_pem)
            conf = IdPConfig()
            conf.load({
                "entityid": self.entity_id,
                "service": {"idp": {
                    "endpoints": {"single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)]},
                    "signing_algorithm": SIG_RSA_SHA256, "digest_algorithm": DIGEST_SHA256,
                    "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None,
                                           "name_form": NAME_FORMAT_BASIC}},
                }},
                "key_file": str(self.workdir / "idp.key"), "cert_file": str(self.workdir / "idp.crt"),
                "metadata": {"inline": [self.sp_metadata]},
                "xmlsec_binary": "/usr/bin/xmlsec1",
            })
            self._server = Server(config=conf)
        return self._server

    def metadata_xml(self) -> str:
        """IdP metadata as an administrator downloads it from Okta or Entra ID."""
        from saml2.metadata import entity_descriptor

        return str(entity_descriptor(self.server().config))

    def response(self, *, in_response_to: str | None, acs_url: str, audience: str,
                 user: dict[str, Any] | None = None) -> str:
        """A base64 SAMLResponse whose assertion pysaml2 signed (the response itself is not signed)."""
        from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID

        who = user or self.user
        identity = {"email": [who["email"]], "groups": list(who.get("groups", [])),
                    "displayName": [who.get("name", who["email"].split("@")[0].title())]}
        resp = self.server().create_authn_response(
            identity=identity, in_response_to=in_response_to, destination=acs_url, sp_entity_id=audience,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=who.get("name_id", who["email"])),
            userid=who["email"], sign_assertion=True, sign_response=False,
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password", "authn_auth": self.entity_id})
        return base64.b64encode(str(resp).encode()).decode()

    def answer(self, query: str) -> tuple[str, str, str]:
        """(ACS URL, SAMLResponse, RelayState) for a redirect-binding AuthnRequest query string."""
        from saml2 import BINDING_HTTP_REDIRECT

        q = {k: v[0] for k, v in parse_qs(query).items()}
        req = self.server().parse_authn_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT).message
        acs = req.assertion_consumer_service_url
        return acs, self.response(in_response_to=req.id, acs_url=acs, audience=req.issuer.text), q.get("RelayState", "")

    def wsgi(self, environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] != "/sso":
            start("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        acs, saml_response, relay = self.answer(environ.get("QUERY_STRING", ""))
        page = (f'<html><body onload="document.forms[0].submit()"><form method="post" action="{html.escape(acs)}">'
                f'<input type="hidden" name="SAMLResponse" value="{saml_response}">'
                f'<input type="hidden" name="RelayState" value="{html.escape(relay)}">'
                '<noscript><button type="submit">Continue</button></noscript></form></body></html>')
        start("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page.encode()]


@contextmanager
def running_idp(sp_metadata: str, keys: KeyPair | None = None) -> Iterator[FakeIdP]:
    """The fake IdP served on a free loopback port in a thread, stopped afterwards."""
    from werkzeug.serving import make_server

    idp = FakeIdP(base_url="", keys=keys or keypair(), sp_metadata=sp_metadata)
    server = make_server("127.0.0.1", 0, idp.wsgi, threaded=True)
    idp.base_url = f"http://127.0.0.1:{server.server_port}"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield idp
    finally:
        server.shutdown()
        t.join(timeout=10)


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields of the IdP's auto-posting form."""
    return {m.group(1): html.unescape(m.group(2))
            for m in re.finditer(r'name="([^"]+)" value="([^"]*)"', page)}


# ---- editing signed responses (attacks) ----------------------------------------------------------

def parse(b64: str) -> Any:
    return etree.fromstring(base64.b64decode(b64))


def dump(doc: Any) -> str:
    return base64.b64encode(etree.tostring(doc)).decode()


def assertion(doc: Any) -> Any:
    return doc.find(f"{{{SAML}}}Assertion")


def resign(b64: str, keys: KeyPair, edit: Callable[[Any], None]) -> str:
    """Drop the assertion's signature, ``edit`` the document, sign the assertion again with ``keys``."""
    from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    doc = parse(b64)
    a = assertion(doc)
    sig = a.find(f"{{{DS}}}Signature")
    if sig is not None:
        a.remove(sig)
    edit(doc)
    a = assertion(doc)
    signed = OneLogin_Saml2_Utils.add_sign(etree.tostring(a), keys.key_pem, keys.cert_pem,
                                           sign_algorithm=C.RSA_SHA256, digest_algorithm=C.SHA256)
    doc.replace(a, etree.fromstring(signed))
    return dump(doc)


def saml_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
