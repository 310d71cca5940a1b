"""Entities and the rules that need no I/O: transaction type from sign, splits, transfers,
category palette and defaults."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from valorize.domain.errors import ValidationFailed
from valorize.domain.money import Money


class AccountType(StrEnum):
    CHECKING = "checking"
    SAVINGS = "savings"
    CREDIT = "credit"
    INVESTMENT = "investment"
    CASH = "cash"


class TransactionType(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"

    @classmethod
    def of(cls, amount: int) -> TransactionType:
        # ../shared/spec/PRODUCT.md: the sign decides; a client-sent type is ignored.
        return cls.DEBIT if amount < 0 else cls.CREDIT


class Origin(StrEnum):
    MANUAL = "manual"
    IMPORT = "import"
    RECURRENCE = "recurrence"
    TRANSFER = "transfer"


class CategoryType(StrEnum):
    EXPENSE = "expense"
    INCOME = "income"


class Color(StrEnum):
    """The original's 14-colour (Catppuccin) palette; colours may repeat per user."""

    LAVENDER = "lavender"
    BLUE = "blue"
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    ROSEWATER = "rosewater"
    FLAMINGO = "flamingo"
    PINK = "pink"
    MAUVE = "mauve"
    MAROON = "maroon"
    PEACH = "peach"
    TEAL = "teal"
    SKY = "sky"
    SAPPHIRE = "sapphire"


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    preferred_currency: str
    locale: str
    created_at: datetime


@dataclass(frozen=True)
class ApiToken:
    id: str
    user_id: str
    name: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    type: AccountType
    currency: str
    opening_balance: int
    balance: int
    created_at: datetime
    updated_at: datetime
    bank_code: str | None = None
    bank_name: str | None = None
    number: str | None = None
    transaction_count: int = 0
    # Alert when the balance falls below this (minor units of the account's currency).
    low_balance_threshold: int | None = None

    @property
    def balance_money(self) -> Money:
        return Money(self.balance, self.currency)

    @property
    def opening_balance_money(self) -> Money:
        return Money(self.opening_balance, self.currency)


class DeletionState(StrEnum):
    RUNNING = "running"
    DONE = "done"


@dataclass(frozen=True)
class AccountDeletion:
    """The progress of deleting an account and its transactions, which a large account
    needs many task deliveries for. Kept after the account is gone, so whoever follows the
    progress sees it finish. `step` counts the deliveries that handed the work on: the next
    task is named after it, so a duplicate delivery of an older step does no work twice."""

    account_id: str
    state: DeletionState
    # Transactions the account held when it was hidden (one may have raced in since).
    total: int
    deleted: int
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    step: int = 0


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    color: Color
    type: CategoryType
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    parent_id: str | None = None
    is_default: bool = False

    @property
    def name_key(self) -> str:
        return category_name_key(self.name)


def category_name_key(name: str) -> str:
    # Unique per user, case-insensitive and blind to surrounding/repeated spaces.
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class Split:
    category_id: str | None
    amount: int
    description: str | None = None


@dataclass(frozen=True)
class Transaction:
    id: str
    account_id: str
    amount: int
    currency: str
    date: date
    description: str
    created_at: datetime
    updated_at: datetime
    category_id: str | None = None
    notes: str | None = None
    splits: tuple[Split, ...] = ()
    origin: Origin = Origin.MANUAL
    fitid: str | None = None
    import_id: str | None = None
    transfer_id: str | None = None
    counterpart_id: str | None = None
    counterpart_account_id: str | None = None

    @property
    def type(self) -> TransactionType:
        return TransactionType.of(self.amount)

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    @property
    def category_ids(self) -> list[str]:
        """Every category the transaction counts under: its own, or its splits'."""
        ids = [s.category_id for s in self.splits if s.category_id] if self.splits else []
        if self.category_id:
            ids.append(self.category_id)
        return sorted(set(ids))

    @property
    def sort_key(self) -> str:
        # One string orders the list newest first and doubles as the cursor: date, then id
        # (time-ordered), so equal dates keep a stable order.
        return f"{self.date.isoformat()}#{self.id}"

    @property
    def is_transfer(self) -> bool:
        return self.transfer_id is not None


def check_splits(
    amount: int, splits: Sequence[Split], category_id: str | None, require_categories: bool = True
) -> None:
    """Splits add up exactly to the amount, each has a category, and they replace the
    transaction's own category.

    `require_categories` is off when the splits are not being written: a split can lose its
    category when that category is deleted with ?uncategorize=true, and the transaction must
    stay editable."""
    if not splits:
        return
    if category_id is not None:
        raise ValidationFailed.on(
            "category_id", "leave empty when splits are given: each split carries its category"
        )
    if len(splits) < 2:
        raise ValidationFailed.on("splits", "a split transaction needs at least two parts")
    for i, split in enumerate(splits):
        if split.category_id is None and require_categories:
            raise ValidationFailed.on(f"splits.{i}.category_id", "each split needs a category")
        if split.amount == 0:
            raise ValidationFailed.on(f"splits.{i}.amount", "a split cannot be zero")
    total = sum(s.amount for s in splits)
    if total != amount:
        raise ValidationFailed.on(
            "splits",
            f"splits add up to {total} but the amount is {amount}; they must match exactly",
        )


def make_transfer(
    *,
    out_id: str,
    in_id: str,
    transfer_id: str,
    source: Account,
    destination: Account,
    amount: int,
    on: date,
    description: str,
    notes: str | None,
    now: datetime,
) -> tuple[Transaction, Transaction]:
    """A transfer is two linked transactions: money out of one account, into the other."""
    if source.id == destination.id:
        raise ValidationFailed.on("to_account_id", "must differ from from_account_id")
    if amount <= 0:
        raise ValidationFailed.on("amount", "a transfer amount must be greater than zero")
    if source.currency != destination.currency:
        raise ValidationFailed.on(
            "to_account_id",
            f"accounts hold {source.currency} and {destination.currency}; "
            "transfers between currencies are not supported",
        )
    common = {
        "currency": source.currency,
        "date": on,
        "description": description,
        "notes": notes,
        "created_at": now,
        "updated_at": now,
        "origin": Origin.TRANSFER,
        "transfer_id": transfer_id,
    }
    out = Transaction(
        id=out_id,
        account_id=source.id,
        amount=-amount,
        counterpart_id=in_id,
        counterpart_account_id=destination.id,
        **common,  # type: ignore[arg-type]
    )
    into = Transaction(
        id=in_id,
        account_id=destination.id,
        amount=amount,
        counterpart_id=out_id,
        counterpart_account_id=source.id,
        **common,  # type: ignore[arg-type]
    )
    return out, into


def mirror_transfer_change(side: Transaction, counterpart: Transaction) -> Transaction:
    """Keep the other side of a transfer in step with an edit of one side."""
    return replace(
        counterpart,
        amount=-side.amount,
        date=side.date,
        description=side.description,
        updated_at=side.updated_at,
    )


@dataclass(frozen=True)
class DefaultCategory:
    color: Color
    type: CategoryType
    names: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)


# The original's ten presets (../shared/spec/ORIGINAL.md §3.3), with English names for non pt-BR
# users.
DEFAULT_CATEGORIES: tuple[DefaultCategory, ...] = (
    DefaultCategory(
        Color.RED,
        CategoryType.EXPENSE,
        {"pt-BR": "Alimentação", "en": "Food & Groceries"},
        {"pt-BR": "Mercado, restaurantes e delivery", "en": "Groceries, restaurants and delivery"},
    ),
    DefaultCategory(
        Color.BLUE,
        CategoryType.EXPENSE,
        {"pt-BR": "Transporte", "en": "Transport"},
        {
            "pt-BR": "Combustível, transporte público e apps",
            "en": "Fuel, public transport and rides",
        },
    ),
    DefaultCategory(
        Color.MAUVE,
        CategoryType.EXPENSE,
        {"pt-BR": "Compras", "en": "Shopping"},
        {
            "pt-BR": "Roupas, eletrônicos e outras compras",
            "en": "Clothes, electronics and other purchases",
        },
    ),
    DefaultCategory(
        Color.PINK,
        CategoryType.EXPENSE,
        {"pt-BR": "Lazer", "en": "Leisure"},
        {"pt-BR": "Cinema, streaming e passeios", "en": "Cinema, streaming and outings"},
    ),
    DefaultCategory(
        Color.PEACH,
        CategoryType.EXPENSE,
        {"pt-BR": "Contas & Utilidades", "en": "Bills & Utilities"},
        {"pt-BR": "Aluguel, luz, água, internet", "en": "Rent, power, water, internet"},
    ),
    DefaultCategory(
        Color.GREEN,
        CategoryType.EXPENSE,
        {"pt-BR": "Saúde", "en": "Health"},
        {
            "pt-BR": "Farmácia, consultas e plano de saúde",
            "en": "Pharmacy, appointments and insurance",
        },
    ),
    DefaultCategory(
        Color.SAPPHIRE,
        CategoryType.EXPENSE,
        {"pt-BR": "Educação", "en": "Education"},
        {"pt-BR": "Cursos, livros e mensalidades", "en": "Courses, books and tuition"},
    ),
    DefaultCategory(
        Color.TEAL,
        CategoryType.EXPENSE,
        {"pt-BR": "Viagens", "en": "Travel"},
        {"pt-BR": "Passagens, hotéis e passeios", "en": "Flights, hotels and tours"},
    ),
    DefaultCategory(
        Color.SKY,
        CategoryType.INCOME,
        {"pt-BR": "Receitas", "en": "Income"},
        {"pt-BR": "Salário e outras entradas", "en": "Salary and other income"},
    ),
    DefaultCategory(
        Color.LAVENDER,
        CategoryType.EXPENSE,
        {"pt-BR": "Poupança", "en": "Savings"},
        {"pt-BR": "Reservas e investimentos", "en": "Reserves and investments"},
    ),
)

SUPPORTED_LOCALES = ("en", "pt-BR")


def default_locale(preferred_currency: str) -> str:
    return "pt-BR" if preferred_currency == "BRL" else "en"
