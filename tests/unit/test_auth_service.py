"""AuthService over the in-memory fakes: registration, login, throttling, tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.unit.conftest import World
from valorize.domain.errors import Conflict, NotFound, RateLimited, Unauthorized
from valorize.domain.model import DEFAULT_CATEGORIES, CategoryType
from valorize.service.auth import TOKEN_PREFIX, TOUCH_EVERY, secret_hash
from valorize.service.requests import CreateToken, Login, Register

PASSWORD = "correct horse battery"


def register(
    world: World, email: str = "Ana@Example.com", currency: str = "BRL", locale: str | None = None
) -> tuple[str, str]:
    cmd = Register(
        email=email, password=PASSWORD, name="Ana", preferred_currency=currency, locale=locale
    )
    user, issued = world.auth.register(cmd)
    return user.id, issued.plaintext


def login(
    world: World, email: str = "ana@example.com", password: str = PASSWORD, ip: str = "203.0.113.7"
) -> str:
    return world.auth.login(Login(email=email, password=password), ip).plaintext


# --- registration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "locale", "expected", "first"),
    [
        ("BRL", None, "pt-BR", "Alimentação"),
        ("USD", None, "en", "Food & Groceries"),
        ("BRL", "en", "en", "Food & Groceries"),
        ("EUR", "pt-BR", "pt-BR", "Alimentação"),
    ],
)
def test_register_seeds_ten_default_categories_in_the_locale(
    world: World, currency: str, locale: str | None, expected: str, first: str
) -> None:
    user_id, _ = register(world, currency=currency, locale=locale)
    user = world.auth.me(user_id)
    assert user.locale == expected
    assert user.preferred_currency == currency
    categories = world.category_store.list_categories(user_id, 50, None).items
    assert len(categories) == 10
    assert all(c.is_default and c.parent_id is None for c in categories)
    names = {c.name for c in categories}
    assert names == {d.names[expected] for d in DEFAULT_CATEGORIES}
    assert first in names
    assert {c.description for c in categories} == {
        d.descriptions[expected] for d in DEFAULT_CATEGORIES
    }
    income = [c for c in categories if c.type is CategoryType.INCOME]
    assert [c.name for c in income] == [{"pt-BR": "Receitas", "en": "Income"}[expected]]


def test_register_lowercases_email_and_stores_only_a_hash(world: World) -> None:
    user_id, token = register(world, email="Ana@Example.COM")
    assert world.auth.me(user_id).email == "ana@example.com"
    found = world.user_store.find_credentials("ana@example.com")
    assert found == (user_id, "hashed:" + PASSWORD)
    assert world.auth.authenticate(token).user_id == user_id


def test_register_twice_with_the_same_email_is_a_conflict(world: World) -> None:
    register(world, email="ana@example.com")
    with pytest.raises(Conflict):
        register(world, email="ANA@example.com")


def test_me_of_unknown_user(world: World) -> None:
    with pytest.raises(NotFound):
        world.auth.me("nobody")


# --- login -------------------------------------------------------------------------------------


def test_login_issues_a_30_day_token(world: World) -> None:
    user_id, _ = register(world)
    token = login(world, email="ANA@example.com")
    principal = world.auth.authenticate(token)
    assert principal.user_id == user_id
    stored = world.user_store.get_token(principal.token_id)
    assert stored is not None
    assert stored[0].name == "login"
    assert stored[0].expires_at == world.clock.now() + timedelta(days=30)


def test_login_with_a_wrong_password(world: World) -> None:
    register(world)
    with pytest.raises(Unauthorized, match="email or password is incorrect"):
        login(world, password="wrong password")


def test_login_with_an_unknown_email_looks_the_same_and_still_hashes(world: World) -> None:
    register(world)
    before = world.hasher.verified
    with pytest.raises(Unauthorized, match="email or password is incorrect"):
        login(world, email="bob@example.com")
    assert world.hasher.verified == before + 1  # same work as a real check


def test_login_is_throttled_after_five_failures(world: World) -> None:
    register(world)
    for _ in range(5):
        with pytest.raises(Unauthorized):
            login(world, password="wrong password")
    with pytest.raises(RateLimited) as e:
        login(world)  # even the right password waits
    assert e.value.retry_after == 900
    assert e.value.status == 429
    assert "900" in e.value.detail
    # Another client address is a different key.
    assert login(world, ip="198.51.100.1")


def test_each_attempt_is_counted_before_its_password_is_checked(world: World) -> None:
    """So concurrent bad logins cannot all pass the limit before any has counted."""
    register(world)
    key = "ana@example.com|203.0.113.7"
    seen: list[int] = []
    verify = world.hasher.verify

    def counting_verify(hashed: str, password: str) -> bool:
        seen.append(world.throttle.failures[key])
        return verify(hashed, password)

    world.hasher.verify = counting_verify  # type: ignore[method-assign]
    for _ in range(5):
        with pytest.raises(Unauthorized):
            login(world, password="wrong password")
    assert seen == [1, 2, 3, 4, 5]
    with pytest.raises(RateLimited):
        login(world, password="wrong password")
    assert len(seen) == 5  # refused without a check


def test_unknown_emails_count_towards_the_throttle(world: World) -> None:
    for _ in range(5):
        with pytest.raises(Unauthorized):
            login(world, email="ghost@example.com")
    with pytest.raises(RateLimited):
        login(world, email="ghost@example.com")


def test_a_successful_login_resets_the_failure_count(world: World) -> None:
    register(world)
    for _ in range(4):
        with pytest.raises(Unauthorized):
            login(world, password="wrong password")
    login(world)
    for _ in range(4):
        with pytest.raises(Unauthorized):
            login(world, password="wrong password")
    assert login(world)


# --- tokens ------------------------------------------------------------------------------------


def test_token_format(world: World) -> None:
    user_id, token = register(world)
    prefix, token_id, secret = token.split("_", 2)
    assert prefix == TOKEN_PREFIX == "vz"
    assert world.user_store.get_token(token_id) is not None
    assert len(secret) >= 43  # 32 random bytes, base64url
    stored = world.user_store.get_token(token_id)
    assert stored is not None and stored[1] == secret_hash(secret) != secret
    assert stored[0].user_id == user_id and stored[0].expires_at is None


def test_authenticate_ok_and_touches_last_used(world: World) -> None:
    user_id, token = register(world)
    principal = world.auth.authenticate(token)
    assert principal.user_id == user_id
    stored = world.user_store.get_token(principal.token_id)
    assert stored is not None and stored[0].last_used_at == world.clock.now()


def test_last_used_is_written_at_most_every_few_minutes(world: World) -> None:
    _, token = register(world)
    first = world.clock.now()
    world.auth.authenticate(token)
    world.clock.advance(TOUCH_EVERY)
    token_id = token.split("_")[1]
    world.auth.authenticate(token)
    stored = world.user_store.get_token(token_id)
    assert stored is not None and stored[0].last_used_at == first
    world.clock.advance(timedelta(seconds=1))
    world.auth.authenticate(token)
    stored = world.user_store.get_token(token_id)
    assert stored is not None and stored[0].last_used_at == world.clock.now()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # forged secret
        lambda t: t.split("_", 2)[0] + "_" + t.split("_", 2)[1] + "_",  # empty secret
        lambda t: "xx" + t[2:],  # wrong prefix
        lambda t: t.split("_", 2)[0] + "_" + t.split("_", 2)[1],  # no secret part
        lambda t: "vz_" + "f" * 32 + "_" + t.split("_", 2)[2],  # unknown id
        lambda t: "vz_a/b_" + t.split("_", 2)[2],  # path-like id
        lambda t: "",
    ],
)
def test_authenticate_refuses_forged_tokens(world: World, mangle: Callable[[str], str]) -> None:
    _, token = register(world)
    with pytest.raises(Unauthorized):
        world.auth.authenticate(mangle(token))


def test_authenticate_refuses_expired_tokens(world: World) -> None:
    user_id, _ = register(world)
    issued = world.auth.create_token(user_id, CreateToken(name="ci", expires_in_days=7))
    assert world.auth.authenticate(issued.plaintext).user_id == user_id
    world.clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert world.auth.authenticate(issued.plaintext).user_id == user_id
    world.clock.advance(timedelta(seconds=1))
    with pytest.raises(Unauthorized, match="expired"):
        world.auth.authenticate(issued.plaintext)


def test_revoked_tokens_stop_working(world: World) -> None:
    user_id, first = register(world)
    second = world.auth.create_token(user_id, CreateToken(name="ci"))
    assert {t.name for t in world.auth.list_tokens(user_id)} == {"default", "ci"}
    world.auth.revoke_token(user_id, second.token.id)
    with pytest.raises(Unauthorized, match="revoked"):
        world.auth.authenticate(second.plaintext)
    assert world.auth.authenticate(first).user_id == user_id
    with pytest.raises(NotFound):
        world.auth.revoke_token(user_id, second.token.id)


def test_a_user_cannot_revoke_or_list_another_users_token(world: World) -> None:
    ana, ana_token = register(world, email="ana@example.com")
    bob, _ = register(world, email="bob@example.com")
    ana_token_id = ana_token.split("_")[1]
    with pytest.raises(NotFound):
        world.auth.revoke_token(bob, ana_token_id)
    assert world.auth.authenticate(ana_token).user_id == ana
    assert ana_token_id not in {t.id for t in world.auth.list_tokens(bob)}


def test_tokens_are_listed_newest_first(world: World) -> None:
    user_id, _ = register(world)
    world.clock.advance(timedelta(minutes=1))
    world.auth.create_token(user_id, CreateToken(name="later"))
    assert [t.name for t in world.auth.list_tokens(user_id)] == ["later", "default"]
