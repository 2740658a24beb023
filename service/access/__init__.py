"""Access control without HTTP: scopes, principals, token secrets, rate limits and the bootstrap admin token."""

from service.access.principal import ALL_SCOPES, Principal, Scope
from service.access.secrets import TOKEN_PREFIX, hash_secret, new_secret

__all__ = ["ALL_SCOPES", "TOKEN_PREFIX", "Principal", "Scope", "hash_secret", "new_secret"]
