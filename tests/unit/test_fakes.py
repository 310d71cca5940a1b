"""The fakes stay faithful: same method signatures as the ports and the Firestore adapter,
same constants, and the adapter's all-or-nothing writes."""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tests.unit import fakes
from tests.unit.conftest import USER, World
from valorize.domain import ids
from valorize.domain.errors import Conflict, NotFound
from valorize.domain.model import ApiToken, Transaction, User
from valorize.service import ports

ADAPTER = (
    Path(ports.__file__).resolve().parents[1] / "adapters" / "firestore_store.py"
)  # parsed, not imported: importing google.cloud.firestore costs about a second
NOW = datetime(2024, 1, 15, tzinfo=UTC)


def protocol_methods(proto: type) -> list[str]:
    return [n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")]


@pytest.mark.parametrize(
    ("proto", "fake"),
    [
        (ports.Store, fakes.InMemoryStore),
        (ports.PasswordHasher, fakes.FakeHasher),
        (ports.LoginThrottle, fakes.FakeThrottle),
        (ports.Clock, fakes.FixedClock),
        (ports.Ids, fakes.SeqIds),
    ],
)
def test_fakes_implement_the_ports(proto: type, fake: type) -> None:
    for name in protocol_methods(proto):
        wanted = list(inspect.signature(getattr(proto, name)).parameters)
        got = list(inspect.signature(getattr(fake, name)).parameters)
        assert got[: len(wanted)] == wanted, name


def adapter_tree() -> ast.Module:
    return ast.parse(ADAPTER.read_text(encoding="utf-8"))


def test_the_store_has_the_adapters_public_methods_and_parameters() -> None:
    tree = adapter_tree()
    [cls] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "FirestoreStore"]
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("_"):
            continue
        params = [a.arg for a in fn.args.args]
        ours = list(inspect.signature(getattr(fakes.InMemoryStore, fn.name)).parameters)
        assert ours == params, fn.name


def test_the_store_shares_the_adapters_constants() -> None:
    found: dict[str, object] = {}
    for node in adapter_tree().body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "SCAN_LIMIT":
                found[name] = ast.literal_eval(node.value)
    # Cursor and id forms are not constants to copy: both import them from domain/ids.py.
    assert found == {"SCAN_LIMIT": fakes.SCAN_LIMIT}


def test_a_write_to_a_missing_account_writes_nothing(world: World) -> None:
    account = world.account()
    good = world.txn(account.id, -5)
    bad = Transaction(
        id="f" * 32,
        account_id="gone",
        amount=-1,
        currency="BRL",
        date=date(2024, 1, 1),
        description="x",
        created_at=NOW,
        updated_at=NOW,
    )
    ok = Transaction(**{**bad.__dict__, "id": "e" * 32, "account_id": account.id})
    with pytest.raises(NotFound):
        world.store.add_transactions(USER, [ok, bad])
    assert world.store.get_transaction(USER, ok.id) is None
    assert world.balance(account.id) == -5
    assert world.store.get_transaction(USER, good.id) == good


def test_create_user_is_all_or_nothing(world: World) -> None:
    store = world.store
    user = User("u9", "a@example.com", "A", "BRL", "pt-BR", NOW)
    token = ApiToken("t9", "u9", "default", NOW)
    store.create_user(user, "h", [], token, "s")
    clash = User("u10", "a@example.com", "B", "BRL", "pt-BR", NOW)
    with pytest.raises(Conflict):
        store.create_user(clash, "h2", [], ApiToken("t10", "u10", "default", NOW), "s")
    assert store.get_user("u10") is None and store.get_token("t10") is None
    assert store.find_credentials("a@example.com") == ("u9", "h")


def test_seq_ids_are_time_ordered_hex() -> None:
    seq = fakes.SeqIds()
    made = [seq.new_id() for _ in range(20)]
    assert made == sorted(made) and all(len(i) == 32 for i in made)
    assert all(ids.TRANSACTION_CURSOR.matches("2024-01-01#" + i) for i in made)
