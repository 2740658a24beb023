"""Token secrets: made with the OS's cryptographic generator, stored only as their SHA-256."""

import hashlib
import secrets

TOKEN_PREFIX = "cvl_"
HINT_LENGTH = 8


def new_secret() -> str:
    """A new token: the `cvl_` prefix and 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The SHA-256 (hex) stored for a token: the secrets are random, so a fast hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hint(secret: str) -> str:
    """The first characters of a token, shown in lists so that people can tell their tokens apart."""
    return secret[:HINT_LENGTH]
