"""Users, their credentials and their API tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from valorize.domain.model import ApiToken, Category, User
from valorize.service.ports.idempotency import IdempotencyRecord


class UserStore(Protocol):
    def create_user(
        self,
        user: User,
        password_hash: str,
        categories: Sequence[Category],
        token: ApiToken,
        secret_hash: str,
    ) -> None:
        """The user, their credentials, default categories and first token, all or nothing;
        Conflict when the email is taken."""
        ...

    def get_user(self, user_id: str) -> User | None: ...
    def find_credentials(self, email: str) -> tuple[str, str] | None:
        """(user id, password hash) of the (normalised) email."""
        ...

    def add_token(
        self, token: ApiToken, secret_hash: str, idem: IdempotencyRecord | None = None
    ) -> None: ...
    def get_token(self, token_id: str) -> tuple[ApiToken, str] | None:
        """(token, secret hash); None also for an id of a form the API never issues."""
        ...

    def touch_token(self, token_id: str, when: datetime) -> None:
        """Record its use (nothing when it was revoked meanwhile)."""
        ...

    def list_tokens(self, user_id: str) -> list[ApiToken]:
        """Newest first."""
        ...

    def delete_token(self, user_id: str, token_id: str) -> bool:
        """False when the user has no such token."""
        ...
