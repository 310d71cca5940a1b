"""The UserStore port in memory (adapters/firestore/users.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from tests.fakes.memory import AlreadyExists, Memory
from valorize.domain import ids
from valorize.domain.errors import Conflict
from valorize.domain.model import ApiToken, Category, User
from valorize.service.ports import IdempotencyRecord


class InMemoryUsers:
    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory if memory is not None else Memory()

    def create_user(
        self,
        user: User,
        password_hash: str,
        categories: Sequence[Category],
        token: ApiToken,
        secret_hash: str,
    ) -> None:
        memory = self.memory
        space = memory.spaces.get(user.id)
        keys = [c.name_key for c in categories]
        if (
            user.email in memory.credentials
            or (space is not None and space.user is not None)
            or len(set(keys)) != len(keys)
            or token.id in memory.tokens
        ):
            raise Conflict("an account with this email already exists")
        space = memory.space(user.id)
        if any(k in space.category_names for k in keys) or any(
            c.id in space.categories for c in categories
        ):
            raise Conflict("an account with this email already exists")
        memory.credentials[user.email] = (user.id, password_hash)
        space.user = user
        for c in categories:
            space.categories[c.id] = c
            space.category_names[c.name_key] = c.id
        memory.tokens[token.id] = (token, secret_hash)
        memory.writes += 1

    def get_user(self, user_id: str) -> User | None:
        space = self.memory.spaces.get(user_id)
        return space.user if space is not None else None

    def find_credentials(self, email: str) -> tuple[str, str] | None:
        return self.memory.credentials.get(email)

    def add_token(
        self, token: ApiToken, secret_hash: str, idem: IdempotencyRecord | None = None
    ) -> None:
        self.memory.check_idem(token.user_id, idem)
        if token.id in self.memory.tokens:
            raise AlreadyExists(f"tokens/{token.id}")
        self.memory.tokens[token.id] = (token, secret_hash)
        self.memory.save_idem(token.user_id, idem)
        self.memory.writes += 1

    def get_token(self, token_id: str) -> tuple[ApiToken, str] | None:
        if not ids.ENTITY.matches(token_id):
            return None
        return self.memory.tokens.get(token_id)

    def touch_token(self, token_id: str, when: datetime) -> None:
        found = self.memory.tokens.get(token_id)
        if found is None:
            return  # revoked meanwhile
        token, hashed = found
        self.memory.tokens[token_id] = (replace(token, last_used_at=when), hashed)
        self.memory.writes += 1

    def list_tokens(self, user_id: str) -> list[ApiToken]:
        tokens = [t for t, _ in self.memory.tokens.values() if t.user_id == user_id]
        return sorted(tokens, key=lambda t: t.created_at, reverse=True)

    def delete_token(self, user_id: str, token_id: str) -> bool:
        found = self.get_token(token_id)
        if found is None or found[0].user_id != user_id:
            return False
        del self.memory.tokens[token_id]
        self.memory.writes += 1
        return True
