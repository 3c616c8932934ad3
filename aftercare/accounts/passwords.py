"""Password hashing (argon2id) and the rules a new password must meet."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from aftercare.errors import InputError

MIN_LENGTH = 12  # NIST SP 800-63B asks for length, not character classes
MAX_LENGTH = 1024  # hashing megabytes of "password" is a denial of service

# argon2-cffi's defaults (RFC 9106's second recommendation: 64 MiB, 3 passes) cost ~50 ms here.
_hasher = PasswordHasher()
# Checked against when the account does not exist, so a wrong email takes as long as a wrong
# password and the timing does not tell which accounts exist.
_DUMMY_HASH = _hasher.hash("not the password of anyone")


def check_new_password(password: str, email: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InputError("password", f"must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        raise InputError("password", f"must be at most {MAX_LENGTH} characters long")
    if password.strip().lower() == email.lower():
        raise InputError("password", "must not be the email address")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash, the same work is done and the answer is no."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
