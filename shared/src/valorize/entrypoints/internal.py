"""Who may call internal endpoints (Cloud Tasks and Cloud Scheduler targets): never a user.

Production: the Google-signed OIDC token of the tasks-invoker or scheduler-invoker service
account, whose audience is this function's URL. Locally (and in tests): the stack's shared
secret in X-Valorize-Internal. Anything else is a 401."""

from __future__ import annotations

import hmac
import os

import flask

from valorize.config import INTERNAL_HEADER, settings
from valorize.domain.errors import Unauthorized


def check_internal(request: flask.Request) -> str:
    """The caller's identity, or Unauthorized."""
    secret = settings().internal_secret
    given = request.headers.get(INTERNAL_HEADER)
    if secret and given is not None:
        if hmac.compare_digest(given.encode(), secret.encode()):
            return "internal-secret"
        raise Unauthorized("bad internal credentials")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    allowed = {
        a for a in (os.environ.get("TASKS_INVOKER_SA"), os.environ.get("SCHEDULER_INVOKER_SA")) if a
    }
    if scheme.lower() != "bearer" or not token or not allowed:
        raise Unauthorized("internal endpoint: needs the invoker's OIDC token")
    try:
        from google.auth.transport import requests as google_requests
        from google.oauth2 import id_token

        claims = id_token.verify_oauth2_token(  # type: ignore[no-untyped-call]
            token, google_requests.Request(), audience=request.host_url.rstrip("/")
        )
    except ValueError:
        raise Unauthorized("invalid OIDC token") from None
    email = str(claims.get("email", ""))
    if email not in allowed or not claims.get("email_verified"):
        raise Unauthorized("this service account may not call internal endpoints")
    return email
