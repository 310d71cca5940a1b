"""Per-user rate limits: every authenticated write (POST, PATCH, PUT, DELETE) counts against
Settings.write_rate, and a statement upload (a multipart write) also against
Settings.upload_rate. Beyond either: 429 with Retry-After, before the request's body is read,
and the refused request is not counted against the other limit.

Counted per user, not per token or address: the limits protect the platform's capacity that
one account can take, whichever of its tokens it uses. Reads are not limited here (they are
served from caches and read models, and bounded by the page limits)."""

from __future__ import annotations

from valorize.domain.errors import RateLimited
from valorize.service.ports import RateLimiter

WRITES = "writes"
UPLOADS = "uploads"


class RateLimits:
    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def check(self, user_id: str, *, upload: bool) -> None:
        """Count one write (an upload when `upload`) of the user; RateLimited when over."""
        for kind in (UPLOADS, WRITES) if upload else (WRITES,):
            wait = self.limiter.hit(kind, user_id)
            if wait:
                raise RateLimited(
                    f"too many {kind} for this user; retry in {wait} s", retry_after=wait
                )
