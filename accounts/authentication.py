from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling

from accounts.models import ApiToken
from accounts.tokens import revoke_token
from audit.models import Source


class LoginLockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check for every login that comes with a request (the login
    pages). Code that authenticates without one (the test client, a shell) is not a door
    a remote guesser can reach; it goes straight to the next backend."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def client_address(request: HttpRequest) -> str:
    """The client's address as every door counts it (the login lockout, the bad-token
    throttle): the TCP peer, or behind TRUSTED_PROXY_COUNT proxies the entry the outermost of
    them wrote into X-Forwarded-For (what the client wrote there itself is to its left). A
    header shorter than that did not come through the proxies: the peer counts."""
    peer = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if proxies and len(forwarded) >= proxies and forwarded[-proxies]:
        return forwarded[-proxies]
    return peer


class BadTokenThrottle(throttling.SimpleRateThrottle):
    """Counts refused bearer tokens per client address (DEFAULT_THROTTLE_RATES["bad_token"])
    in the cache every web process shares. Authentication runs before DRF's throttles, so the
    authenticator asks this one itself, and only for a token it refused."""

    scope = "bad_token"
    duration: int  # set from the rate by SimpleRateThrottle.__init__
    num_requests: int

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}

    def refuse_if_exceeded(self, request) -> None:
        self.key = self.get_cache_key(request, None)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            raise exceptions.Throttled(self.wait(), "Too many invalid bearer tokens from this address.")

    def count_failure(self) -> None:
        self.throttle_success()  # appends this attempt to the history


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` (or `Token <token>`, as dbt Cloud clients send it); the
    token acts with exactly its owner's rights."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, plaintext = header.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        plaintext = plaintext.strip()
        token = ApiToken.find_usable(plaintext) if plaintext else None
        if token is not None and token.user.is_active:
            return token.user, token  # whatever others sent from this address
        throttle = BadTokenThrottle()
        throttle.refuse_if_exceeded(request)
        throttle.count_failure()
        raise exceptions.AuthenticationFailed(
            "Invalid, expired or revoked token." if plaintext else "Empty bearer token."
        )

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents the bearer scheme in the OpenAPI schema."""

    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "Your API tokens page: /account/tokens/"}


class RevokeTokensOnPasswordChange:
    """Not a rule on the password: Django calls every password validator's
    `password_changed` after a user's password is set, and a new password revokes the
    tokens issued under the old one (each revocation audited)."""

    def validate(self, password: str, user=None) -> None:
        return None

    def get_help_text(self) -> str:
        return "Changing the password revokes the account's API tokens."

    def password_changed(self, password: str, user=None) -> None:
        if user is None or user.pk is None:
            return
        with transaction.atomic():
            for token in ApiToken.objects.usable().filter(user=user):
                revoke_token(token, actor="system", source=Source.SYSTEM, reason="owner's password changed")
