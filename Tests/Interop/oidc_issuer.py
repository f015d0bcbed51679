"""A small OpenID Connect issuer of the tests' own, on loopback: an RSA key, its JWKS, a discovery
document, signed ID tokens, and an authorization endpoint that signs the browser in at once. Parley's
real verification path (JWKS fetch, signature, iss, aud, exp, nonce) runs against it."""
import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_bytes(value):
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


class Issuer:
    CLIENT_ID = "parley-tests"

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # What the authorization endpoint signs in as (the browser test sets it).
        self.next_user = {"sub": "user-1", "email": "ada@example.org", "email_verified": True, "name": "Ada"}
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()

    def jwks(self):
        numbers = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                          "n": b64url(int_bytes(numbers.n)), "e": b64url(int_bytes(numbers.e))}]}

    def id_token(self, nonce, sub="user-1", email="ada@example.org", email_verified=True, name="Ada", audience=None,
                 issuer=None, expires_in=300, key=None, kid=None):
        header = {"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}
        now = int(time.time())
        claims = {"iss": issuer or self.url, "sub": sub, "aud": audience or self.CLIENT_ID, "iat": now, "exp": now + expires_in,
                  "nonce": nonce, "email": email, "email_verified": email_verified, "name": name}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        signature = (key or self.key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)

    def _handler(issuer):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                if url.path == "/.well-known/openid-configuration":
                    self._json({"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks",
                                "authorization_endpoint": issuer.url + "/authorize", "response_types_supported": ["id_token"],
                                "id_token_signing_alg_values_supported": ["RS256"]})
                elif url.path == "/jwks":
                    self._json(issuer.jwks())
                elif url.path == "/authorize":
                    query = dict(urllib.parse.parse_qsl(url.query))
                    user = issuer.next_user
                    token = issuer.id_token(query.get("nonce"), sub=user["sub"], email=user["email"],
                                            email_verified=user["email_verified"], name=user["name"],
                                            audience=query.get("client_id"))
                    fragment = urllib.parse.urlencode({"id_token": token, "state": query.get("state", "")})
                    self.send_response(302)
                    self.send_header("Location", query["redirect_uri"] + "#" + fragment)
                    self.end_headers()
                else:
                    self.send_response(404)
                    self.end_headers()
        return Handler
