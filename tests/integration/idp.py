"""A test identity provider: keys made with ``cryptography``, a JWKS served on a loopback port, tokens signed by PyJWT."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

_MAKERS = {
    "RS256": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm),
    "ES256": (lambda: ec.generate_private_key(ec.SECP256R1()), ECAlgorithm),
    "EdDSA": (ed25519.Ed25519PrivateKey.generate, OKPAlgorithm),
}


class TestIdP:
    """Signing keys by kid, a JWKS endpoint publishing some of them, and a counter of JWKS fetches."""

    __test__ = False

    def __init__(self, issuer: str = "https://login.gridco.example") -> None:
        self.issuer = issuer
        self.keys: dict[str, tuple[str, object]] = {}  # kid -> (alg, private key)
        self.published: list[str] = []
        self.fetches = 0
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                idp.fetches += 1
                body = json.dumps(idp.jwks()).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def add_key(self, kid: str, alg: str = "RS256", publish: bool = True) -> None:
        make, _ = _MAKERS[alg]
        self.keys[kid] = (alg, make())
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict:
        out = []
        for kid in self.published:
            alg, key = self.keys[kid]
            jwk = _MAKERS[alg][1].to_jwk(key.public_key(), as_dict=True)
            out.append({**jwk, "kid": kid, "use": "sig", "alg": alg})
        return {"keys": out}

    def token(self, kid: str, *, aud: str = "clearance", lifetime: float = 300, iss: str | None = None,
              **claims) -> str:
        alg, key = self.keys[kid]
        now = int(time.time())
        payload = {"iss": iss or self.issuer, "aud": aud, "iat": now, "exp": now + lifetime, **claims}
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})

    def stop(self) -> None:
        self.server.shutdown()
