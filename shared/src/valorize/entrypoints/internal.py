"""Who may call internal endpoints (Cloud Tasks and Cloud Scheduler targets): never a user.

Production: a Google-signed OIDC token whose audience is one of this function's configured
audiences (``VALORIZE_INTERNAL_AUDIENCES``: its run.app URL, exactly as the tasks and the
scheduler jobs address it) and whose verified email is one of the invoker service accounts the
registry grants it (``VALORIZE_INTERNAL_CALLERS``). The audience is configuration, never
derived from the request: behind Cloud Run's front end the request URL the app sees can be
``http://`` while the token says ``https://``, and a Host header is the caller's to choose.

Locally (devstack and tests): the stack's shared secret in X-Valorize-Internal, accepted only
where ``VALORIZE_INTERNAL_SECRET`` is set, which production never sets. Anything else is a
401."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING

import flask

from valorize.config import INTERNAL_HEADER, Settings
from valorize.domain.errors import Unauthorized

if TYPE_CHECKING:
    from google.auth.transport.requests import Request

# Google's ID tokens name either form of the issuer.
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
# Clock difference tolerated between Google's token minting and this instance.
CLOCK_SKEW_SECONDS = 10


def check_internal(request: flask.Request, s: Settings, transport: Callable[[], Request]) -> str:
    """The caller's identity, or Unauthorized. `transport()`: the HTTP transport that fetches
    Google's signing keys (bootstrap's `oidc_transport`, built on the first token)."""
    given = request.headers.get(INTERNAL_HEADER)
    if given is not None:
        if s.internal_secret and hmac.compare_digest(given.encode(), s.internal_secret.encode()):
            return "internal-secret"
        raise Unauthorized("bad internal credentials")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("internal endpoint: needs the invoker's OIDC token")
    if not s.internal_callers or not s.internal_audiences:
        # Misconfigured (or a function with no internal callers): refuse rather than guess.
        raise Unauthorized("internal endpoint: no invoker is configured for this function")
    from google.auth import exceptions as auth_errors
    from google.oauth2 import id_token

    try:
        claims = id_token.verify_token(
            token,
            transport(),
            audience=list(s.internal_audiences),
            certs_url=s.oidc_certs_url,
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except (ValueError, auth_errors.GoogleAuthError):
        # Bad signature, unknown key, expired, wrong audience, malformed: all the same to us.
        raise Unauthorized("invalid OIDC token") from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise Unauthorized("invalid OIDC token")
    email = str(claims.get("email", ""))
    if email not in s.internal_callers or claims.get("email_verified") is not True:
        raise Unauthorized("this identity may not call internal endpoints")
    return email
