"""Google's OAuth side of the emulator: service-account keys, the token endpoint, bearer tokens.

`/token` accepts only the JWT-bearer grant, verifies the RS256 assertion against the keys
registered for its issuer and hands out short-lived opaque access tokens carrying the scopes.
"""

from __future__ import annotations

import binascii
import json
import secrets
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bridge.sandbox.google.state import Store, Token
from bridge.sandbox.google.wire import (
    JSON,
    ApiRequest,
    ApiResponse,
    b64url_decode,
    oauth_error,
)

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME_S = 3600


class _GrantError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


def generate_service_account(
    token_uri: str, client_email: str = "bridge@sandbox-project.iam.gserviceaccount.com"
) -> dict[str, str]:
    """A service-account key JSON with a fresh 2048-bit RSA key and the given `token_uri`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    domain = client_email.partition("@")[2]
    project_id = (
        domain.split(".", 1)[0] if domain.endswith(".iam.gserviceaccount.com") else "sandbox"
    )
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": str(secrets.randbelow(10**21 - 10**20) + 10**20),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": (
            f"https://www.googleapis.com/robot/v1/metadata/x509/{quote(client_email)}"
        ),
        "universe_domain": "googleapis.com",
    }


def add_service_account(store: Store, info: Mapping[str, str]) -> None:
    private_key = serialization.load_pem_private_key(info["private_key"].encode(), None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError("a service-account key must be RSA")
    key_id = info.get("private_key_id") or secrets.token_hex(20)
    with store.lock:
        store.keys.setdefault(info["client_email"], {})[key_id] = private_key.public_key()


def exchange_token(store: Store, request: ApiRequest) -> ApiResponse:
    form = dict(parse_qsl(request.body.decode("utf-8", errors="replace")))
    grant_type = form.get("grant_type")
    if grant_type == "refresh_token":
        return oauth_error("invalid_grant", "Token has been expired or revoked.")
    if grant_type != JWT_BEARER_GRANT:
        return oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
    try:
        claims = _verify_assertion(store, form.get("assertion", ""))
    except _GrantError as error:
        return oauth_error(error.error, str(error))
    access_token = "ya29.sandbox-" + secrets.token_urlsafe(32)
    store.state.tokens[access_token] = Token(
        user=str(claims.get("sub") or claims["iss"]),
        scopes=frozenset(str(claims["scope"]).split()),
        expires_at=time.time() + TOKEN_LIFETIME_S,
    )
    body = {
        "access_token": access_token,
        "expires_in": TOKEN_LIFETIME_S,
        "token_type": "Bearer",
    }
    return ApiResponse(200, body)


def _verify_assertion(store: Store, assertion: str) -> JSON:
    try:
        encoded_header, encoded_claims, encoded_signature = assertion.split(".")
        header = json.loads(b64url_decode(encoded_header))
        claims = json.loads(b64url_decode(encoded_claims))
        signature = b64url_decode(encoded_signature)
    except (ValueError, binascii.Error) as exc:
        raise _GrantError("invalid_grant", "Invalid JWT: malformed assertion.") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _GrantError("invalid_grant", "Invalid JWT: malformed assertion.")
    if header.get("alg") != "RS256":
        raise _GrantError("invalid_grant", "Invalid JWT: the algorithm must be RS256.")
    keys = store.keys.get(str(claims.get("iss")), {})
    if not keys:
        raise _GrantError("invalid_grant", "Invalid grant: account not found")
    candidates = [keys[header["kid"]]] if header.get("kid") in keys else list(keys.values())
    signed = f"{encoded_header}.{encoded_claims}".encode()
    if not any(_signature_valid(key, signed, signature) for key in candidates):
        raise _GrantError("invalid_grant", "Invalid JWT Signature.")
    if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
        raise _GrantError(
            "invalid_grant",
            "Invalid JWT: Failed audience check. The right audience is " + GOOGLE_TOKEN_AUDIENCE,
        )
    now = time.time()
    iat, exp = claims.get("iat"), claims.get("exp")
    if (
        not isinstance(iat, int | float)
        or not isinstance(exp, int | float)
        or exp < now
        or iat > now + 300
        or exp - iat > TOKEN_LIFETIME_S
    ):
        raise _GrantError(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim.",
        )
    if not str(claims.get("scope") or "").strip():
        raise _GrantError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    return claims


def authenticate(store: Store, request: ApiRequest) -> Token | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = store.state.tokens.get(value.strip())
    if token is None or token.expires_at < time.time():
        return None
    return token


def user_of(store: Store, request: ApiRequest) -> str | None:
    token = authenticate(store, request)
    return token.user if token is not None else None


def _signature_valid(key: rsa.RSAPublicKey, signed: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
