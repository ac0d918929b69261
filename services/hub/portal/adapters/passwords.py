"""Passwords as argon2id hashes (argon2-cffi's defaults: RFC 9106's second recommended set)."""

from __future__ import annotations

from argon2 import PasswordHasher as Argon2
from argon2.exceptions import InvalidHashError, VerificationError

from hub.portal.service_layer.ports import PasswordHasher


class Argon2Hasher(PasswordHasher):
    def __init__(self):
        self._argon2 = Argon2()

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
