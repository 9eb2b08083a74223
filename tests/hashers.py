"""The tests' password hasher: Django's PBKDF2 with 1,000 iterations instead of a million, so
the thousands of users the suite creates cost milliseconds, not minutes. Its hashes are
ordinary `pbkdf2_sha256$1000$…` strings: a web host started by a test (default settings)
checks them like any other and upgrades them on login."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FewIterationsPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000
