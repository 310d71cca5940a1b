"""Response shapes of the public API (../shared/spec/CONTRACT.md): pydantic models that render
domain objects and document them in OpenAPI."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from valorize.domain.model import (
    Account,
    AccountDeletion,
    AccountType,
    CategoryType,
    Color,
    DeletionState,
    Origin,
    Transaction,
    TransactionType,
    User,
)
from valorize.domain.money import Money
from valorize.service.auth import IssuedToken
from valorize.service.ports import PageResult

T = TypeVar("T")


class Out(BaseModel):
    """A response schema. `of` renders a domain object whose attributes bear the schema's
    field names (nested objects alike); a schema whose fields differ says how in its own."""

    # Built on first use, as RequestModel: a function renders a few of these.
    model_config = ConfigDict(from_attributes=True, defer_build=True)

    @classmethod
    def of(cls, obj: Any) -> Self:
        return cls.model_validate(obj, from_attributes=True)

    @classmethod
    def drawn(cls, obj: Any, **given: Any) -> Self:
        """`obj` rendered with the fields `given`, every other field read from its attribute
        of the same name."""
        read = {name: getattr(obj, name) for name in cls.model_fields if name not in given}
        return cls.model_validate({**read, **given})


class MoneyOut(Out):
    amount: int = Field(description="Integer minor units (cents); negative = money out")
    currency: str = Field(description="ISO-4217 code")


class ListOf(Out, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end"
    )

    @classmethod
    def of(cls, page: PageResult[Any] | Sequence[Any]) -> Self:
        """A page (or a whole list) rendered item by item through the item's schema."""
        (item,) = cls.__pydantic_generic_metadata__["args"]
        if isinstance(page, PageResult):
            return cls(data=[item.of(x) for x in page.items], next_cursor=page.next_cursor)
        return cls(data=[item.of(x) for x in page], next_cursor=None)


class UserOut(Out):
    id: str
    email: str
    name: str
    preferred_currency: str
    locale: str
    created_at: dt.datetime


class TokenOut(Out):
    id: str
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None


class IssuedTokenOut(TokenOut):
    token: str = Field(description="The secret; shown only in this response")

    @classmethod
    def of(cls, i: IssuedToken) -> IssuedTokenOut:
        return cls(token=i.plaintext, **TokenOut.of(i.token).model_dump())


class RegisteredOut(Out):
    user: UserOut
    token: str

    @classmethod
    def of(cls, registered: tuple[User, IssuedToken]) -> RegisteredOut:
        user, issued = registered
        return cls(user=UserOut.of(user), token=issued.plaintext)


class LoginOut(Out):
    token: str
    expires_at: dt.datetime | None

    @classmethod
    def of(cls, issued: IssuedToken) -> LoginOut:
        return cls(token=issued.plaintext, expires_at=issued.token.expires_at)


class AccountOut(Out):
    id: str
    name: str
    type: AccountType
    currency: str
    balance: MoneyOut
    opening_balance: MoneyOut
    bank_code: str | None
    bank_name: str | None
    number: str | None
    transaction_count: int
    low_balance_threshold: int | None = Field(
        description="Notify when the balance falls below this (minor units); null: never"
    )
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, a: Account) -> AccountOut:
        return cls.drawn(
            a,
            balance=MoneyOut.of(a.balance_money),
            opening_balance=MoneyOut.of(a.opening_balance_money),
        )


class AccountDeletionOut(Out):
    account_id: str
    state: DeletionState = Field(
        description="running: the account is hidden and its transactions are going; done: "
        "the account and every transaction of it are gone"
    )
    deleted: int = Field(description="Transactions deleted so far")
    total: int = Field(description="Transactions to delete (at least `deleted`)")
    started_at: dt.datetime
    updated_at: dt.datetime = Field(description="The last progress")
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, d: AccountDeletion) -> AccountDeletionOut:
        # A transaction that raced into the account as it was hidden is deleted too.
        return cls.drawn(d, total=max(d.total, d.deleted))


class CategoryOut(Out):
    id: str
    name: str
    color: Color
    type: CategoryType
    description: str | None
    parent_id: str | None
    is_default: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class SplitOut(Out):
    category_id: str | None
    amount: int
    description: str | None


class TransactionOut(Out):
    id: str
    account_id: str
    amount: int = Field(description="Signed integer minor units of the account's currency")
    currency: str
    type: TransactionType = Field(description="Follows the sign: negative = debit")
    date: dt.date
    description: str
    category_id: str | None
    notes: str | None
    splits: list[SplitOut]
    origin: Origin
    fitid: str | None
    import_id: str | None
    transfer_id: str | None
    counterpart_id: str | None = Field(description="The other side of a transfer")
    counterpart_account_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class TransferOut(Out):
    transfer_id: str
    from_transaction: TransactionOut = Field(alias="from")
    to_transaction: TransactionOut = Field(alias="to")

    @classmethod
    def of(cls, pair: tuple[Transaction, Transaction]) -> TransferOut:
        out, into = pair
        return cls.model_validate(
            {
                "transfer_id": out.transfer_id,
                "from": TransactionOut.of(out),
                "to": TransactionOut.of(into),
            }
        )


class ApiPayloads:
    """The API's JSON of a resource, sent outside a response (realtime events): the same as
    the HTTP API answers for it (service/live_updates.py's Payloads)."""

    @staticmethod
    def transaction(txn: Transaction) -> dict[str, object]:
        return TransactionOut.of(txn).model_dump(mode="json", by_alias=True)

    @staticmethod
    def account(account: Account) -> dict[str, object]:
        return AccountOut.of(account).model_dump(mode="json", by_alias=True)

    @staticmethod
    def money(money: Money) -> dict[str, object]:
        return MoneyOut.of(money).model_dump(mode="json", by_alias=True)


class FieldProblem(Out):
    field: str
    message: str


class Problem(Out):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] = Field(default_factory=list)
