"""Recurrences: schedules, month-end clamping, deterministic ids, exactly-once catch-up."""

from __future__ import annotations

import calendar
import itertools
import json
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from valorize.adapters.firestore.rule_documents import schedule_doc
from valorize.adapters.firestore.rule_documents import schedule_of as schedule_of_doc
from valorize.domain.errors import ValidationFailed
from valorize.domain.model import Origin
from valorize.domain.recurrence import (
    MAX_INTERVAL,
    Daily,
    Monthly,
    Recurrence,
    Schedule,
    Weekday,
    Weekly,
    Yearly,
    due,
    due_between,
    materialize,
    next_due,
    occurrence_id,
    occurrences,
    parse_occurrence_id,
)
from valorize.entrypoints.recurrence_schemas import RecurrenceOut
from valorize.entrypoints.routes import dump
from valorize.service.requests.recurrences import (
    CreateRecurrence,
    UpdateRecurrence,
    schedule_json,
)

NOW = datetime(2025, 1, 1, 9, 0)
FAST = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
D = date.fromisoformat


def rec(
    schedule: Schedule,
    start: date = date(2024, 1, 1),
    end: date | None = None,
    *,
    rec_id: str = "r1",
    materialized_through: date | None = None,
) -> Recurrence:
    return Recurrence(
        id=rec_id,
        account_id="acc1",
        amount=-150000,
        currency="BRL",
        description="Rent",
        schedule=schedule,
        start=start,
        end=end,
        category_id="housing",
        created_at=NOW,
        updated_at=NOW,
        materialized_through=materialized_through,
    )


def days(*iso: str) -> list[date]:
    return [D(s) for s in iso]


# --- schedules by example ---------------------------------------------------------------------


class TestSchedules:
    def test_day_31_clamps_to_each_months_end_without_drifting(self) -> None:
        r = rec(Monthly(31), D("2024-01-31"))
        assert occurrences(r, D("2024-01-01"), D("2024-06-30")) == days(
            "2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30"
        )
        assert occurrences(r, D("2025-01-01"), D("2025-03-31")) == days(
            "2025-01-31", "2025-02-28", "2025-03-31"
        )

    def test_monthly_first_occurrence_is_on_or_after_start(self) -> None:
        assert occurrences(rec(Monthly(5), D("2024-01-05")), D("2024-01-01"), D("2024-02-29")) == (
            days("2024-01-05", "2024-02-05")
        )
        assert occurrences(rec(Monthly(5), D("2024-01-06")), D("2024-01-01"), D("2024-02-29")) == (
            days("2024-02-05")
        )

    def test_quarterly_counts_from_the_first_occurrence(self) -> None:
        r = rec(Monthly(15, interval=3), D("2024-01-20"))
        assert occurrences(r, D("2024-01-01"), D("2024-12-31")) == days(
            "2024-02-15", "2024-05-15", "2024-08-15", "2024-11-15"
        )

    def test_yearly_feb_29_is_feb_28_in_common_years(self) -> None:
        r = rec(Yearly(2, 29), D("2023-01-01"))
        assert occurrences(r, D("2023-01-01"), D("2028-12-31")) == days(
            "2023-02-28", "2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"
        )

    def test_weekly_and_biweekly(self) -> None:
        monday = D("2024-01-01")
        assert occurrences(rec(Weekly(Weekday.FRIDAY), monday), monday, D("2024-01-20")) == days(
            "2024-01-05", "2024-01-12", "2024-01-19"
        )
        r = rec(Weekly(Weekday.MONDAY, interval=2), monday)
        assert occurrences(r, D("2024-01-02"), D("2024-02-01")) == days("2024-01-15", "2024-01-29")

    def test_every_n_days(self) -> None:
        r = rec(Daily(10), D("2024-02-25"))
        assert occurrences(r, D("2024-01-01"), D("2024-03-31")) == days(
            "2024-02-25", "2024-03-06", "2024-03-16", "2024-03-26"
        )

    def test_end_is_inclusive(self) -> None:
        r = rec(Monthly(10), D("2024-01-01"), end=D("2024-03-10"))
        assert occurrences(r, D("2000-01-01"), D("2030-01-01")) == days(
            "2024-01-10", "2024-02-10", "2024-03-10"
        )

    def test_next_due(self) -> None:
        r = rec(Monthly(31), D("2024-01-31"), end=D("2024-04-30"))
        assert next_due(r, D("2023-06-01")) == D("2024-01-31")
        assert next_due(r, D("2024-01-31")) == D("2024-02-29")  # strictly after
        assert next_due(r, D("2024-03-31")) == D("2024-04-30")
        assert next_due(r, D("2024-04-30")) is None
        assert next_due(r, date.max) is None

    def test_the_calendar_ends_quietly(self) -> None:
        r = rec(Yearly(12, 31), D("9998-01-01"))
        assert occurrences(r, D("9998-01-01"), date.max) == days("9998-12-31", "9999-12-31")
        assert next_due(r, D("9999-12-31")) is None

    @pytest.mark.parametrize(
        ("build", "field"),
        [
            (lambda: Monthly(0), "day"),
            (lambda: Monthly(32), "day"),
            (lambda: Monthly(1, interval=0), "interval"),
            (lambda: Monthly(1, interval=MAX_INTERVAL["monthly"] + 1), "interval"),
            (lambda: Yearly(2, 30), "day"),
            (lambda: Yearly(4, 31), "day"),
            (lambda: Yearly(13, 1), "month"),
            (lambda: Daily(0), "interval"),
            (lambda: Weekly("friday"), "weekday"),  # type: ignore[arg-type]
        ],
    )
    def test_invalid_schedules(self, build: object, field: str) -> None:
        with pytest.raises(ValidationFailed) as e:
            build()  # type: ignore[operator]
        assert e.value.errors[0].field == field

    def test_invalid_recurrences(self) -> None:
        with pytest.raises(ValidationFailed, match="end"):
            rec(Monthly(1), D("2024-02-01"), end=D("2024-01-31"))
        with pytest.raises(ValidationFailed, match="amount"):
            Recurrence("r", "a", 0, "BRL", "x", Monthly(1), D("2024-01-01"), NOW, NOW)


# --- ids, materialize, catch-up ---------------------------------------------------------------


class TestOccurrences:
    def test_occurrence_ids_are_deterministic_and_parse_back(self) -> None:
        assert occurrence_id("abc_1-X", D("2024-02-29")) == "rec-abc_1-X-20240229"
        assert occurrence_id("r", D("0999-01-02")) == "rec-r-09990102"
        assert parse_occurrence_id("rec-abc_1-X-20240229") == ("abc_1-X", D("2024-02-29"))
        assert parse_occurrence_id("rec-r-20230229") is None  # no such day
        assert parse_occurrence_id("0192abcd") is None
        with pytest.raises(ValueError):
            occurrence_id("a/b", D("2024-01-01"))

    def test_materialize(self) -> None:
        r = rec(Monthly(31), D("2024-01-31"))
        t = materialize(r, D("2024-04-30"), now=NOW)
        assert t.id == "rec-r1-20240430"
        assert (t.account_id, t.amount, t.currency, t.date) == (
            "acc1",
            -150000,
            "BRL",
            D("2024-04-30"),
        )
        assert (t.description, t.category_id, t.origin) == ("Rent", "housing", Origin.RECURRENCE)
        assert (t.created_at, t.updated_at) == (NOW, NOW)
        with pytest.raises(ValidationFailed, match="not an occurrence"):
            materialize(r, D("2024-04-29"), now=NOW)

    def test_catch_up_after_an_outage(self) -> None:
        r = rec(Monthly(5), D("2024-01-01"), materialized_through=D("2024-01-31"))
        assert due(r, D("2024-05-04")) == days("2024-02-05", "2024-03-05", "2024-04-05")
        assert due_between(r, None, D("2024-02-05")) == days("2024-01-05", "2024-02-05")
        assert due_between(r, D("2024-06-01"), D("2024-05-01")) == []


# --- properties -------------------------------------------------------------------------------

dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31))
schedules: st.SearchStrategy[Schedule] = st.one_of(
    st.builds(Monthly, st.integers(1, 31), st.integers(1, 12) | st.just(1)),
    st.builds(Weekly, st.sampled_from(Weekday), st.integers(1, 8) | st.just(1)),
    st.integers(1, 12).flatmap(
        lambda m: st.builds(
            Yearly,
            st.just(m),
            st.integers(1, calendar.monthrange(2000, m)[1]),
            st.integers(1, 4) | st.just(1),
        )
    ),
    st.builds(Daily, st.integers(1, 400)),
)


@st.composite
def recurrences(draw: st.DrawFn) -> Recurrence:
    start = draw(dates)
    length = draw(st.none() | st.integers(0, 3000))
    end = None if length is None else start + timedelta(days=length)
    return rec(
        draw(schedules),
        start,
        end,
        rec_id=draw(st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)),
    )


@st.composite
def windows(draw: st.DrawFn) -> tuple[date, date]:
    lo = draw(dates)
    return lo, lo + timedelta(days=draw(st.integers(0, 2000)))


def is_scheduled(s: Schedule, start: date, d: date) -> bool:
    """An independent definition: walk the periods from the start, no index arithmetic."""
    if isinstance(s, Daily):
        return d >= start and (d - start).days % s.interval == 0
    if isinstance(s, Weekly):
        first = start
        while first.weekday() != list(Weekday).index(s.weekday):
            first += timedelta(days=1)
        return d >= first and (d - first).days % (7 * s.interval) == 0
    if isinstance(s, Monthly):
        # The scheduled date of each month, from the start's month on.
        y, m = start.year, start.month
        first_found = None
        while (y, m) <= (d.year, d.month):
            on = date(y, m, min(s.day, calendar.monthrange(y, m)[1]))
            if on >= start and first_found is None:
                first_found = (y, m)
            if (y, m) == (d.year, d.month):
                if first_found is None or on != d:
                    return False
                return ((y - first_found[0]) * 12 + m - first_found[1]) % s.interval == 0
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return False
    y = start.year
    first_year = None
    while y <= d.year:
        on = date(y, s.month, min(s.day, calendar.monthrange(y, s.month)[1]))
        if on >= start and first_year is None:
            first_year = y
        if y == d.year:
            return first_year is not None and on == d and (y - first_year) % s.interval == 0
        y += 1
    return False


@FAST
@given(recurrences(), st.integers(-60, 1500), st.integers(0, 400))
def test_occurrences_are_increasing_inside_the_window_and_match_the_definition(
    r: Recurrence, offset: int, length: int
) -> None:
    lo = r.start + timedelta(days=offset)
    hi = lo + timedelta(days=length)
    got = occurrences(r, lo, hi)
    assert all(a < b for a, b in itertools.pairwise(got))
    bottom, top = max(lo, r.start), min(hi, r.end or hi)
    assert all(bottom <= d <= top for d in got)
    # The day-by-day definition, with no index arithmetic.
    expected = [
        lo + timedelta(days=i)
        for i in range(length + 1)
        if bottom <= lo + timedelta(days=i) <= top
        and is_scheduled(r.schedule, r.start, lo + timedelta(days=i))
    ]
    assert got == expected


@FAST
@given(recurrences(), windows())
def test_ids_are_unique_per_date_and_round_trip(r: Recurrence, window: tuple[date, date]) -> None:
    got = occurrences(r, *window)
    ids = [occurrence_id(r.id, d) for d in got]
    assert len(set(ids)) == len(ids)
    assert [parse_occurrence_id(i) for i in ids] == [(r.id, d) for d in got]
    assert all(materialize(r, d, now=NOW).id == i for d, i in zip(got[:3], ids, strict=False))


@FAST
@given(st.integers(1, 31), dates, st.integers(1, 120))
def test_monthly_never_skips_a_month(day: int, start: date, months: int) -> None:
    r = rec(Monthly(day), start)
    got = occurrences(r, start, start + timedelta(days=31 * months))
    keys = [(d.year, d.month) for d in got]
    assert len(set(keys)) == len(keys)
    for (y1, m1), (y2, m2) in itertools.pairwise(keys):
        assert y2 * 12 + m2 == y1 * 12 + m1 + 1
    for d in got:
        assert d.day == min(day, calendar.monthrange(d.year, d.month)[1])


@FAST
@given(dates, st.integers(1, 40))
def test_yearly_feb_29_lands_once_a_year_on_the_last_day_of_february(
    start: date, years: int
) -> None:
    r = rec(Yearly(2, 29), start)
    got = occurrences(r, start, date(start.year + years, 12, 31))
    # The start year counts when it starts on or before its own last day of February (the
    # 29th itself, in a leap year).
    last_of_february = date(start.year, 3, 1) - timedelta(days=1)
    assert len(got) == years + (1 if start <= last_of_february else 0)
    for d in got:
        assert (d.month, d.day) == (2, 29 if calendar.isleap(d.year) else 28)


@FAST
@given(recurrences(), dates, st.lists(st.integers(0, 120), min_size=1, max_size=30))
def test_catch_up_over_any_runs_gives_each_occurrence_exactly_once(
    r: Recurrence, first_run: date, gaps: list[int]
) -> None:
    runs = [first_run]
    for gap in gaps:
        runs.append(runs[-1] + timedelta(days=gap))
    watermark: date | None = None
    created: list[date] = []
    for today in runs:
        created += due_between(r, watermark, today)
        watermark = today if watermark is None else max(watermark, today)
    assert len(created) == len(set(created))
    assert created == due_between(r, None, runs[-1])


@FAST
@given(recurrences(), dates, st.integers(0, 200))
def test_running_day_by_day_equals_running_once(r: Recurrence, last: date, span: int) -> None:
    daily: list[date] = []
    for i in range(1, span + 1):
        daily += due_between(r, last + timedelta(days=i - 1), last + timedelta(days=i))
    assert daily == due_between(r, last, last + timedelta(days=span))


@FAST
@given(recurrences(), dates)
def test_next_due_is_the_first_occurrence_after(r: Recurrence, after: date) -> None:
    upcoming = next_due(r, after)
    later = occurrences(r, after + timedelta(days=1), date(2100, 12, 31))
    assume(upcoming is None or upcoming.year <= 2100)
    assert upcoming == (later[0] if later else None)


@FAST
@given(schedules)
def test_schedule_json_round_trips(s: Schedule) -> None:
    stored = json.loads(json.dumps(schedule_doc(s)))
    assert schedule_of_doc(stored) == s
    # The shape every stored document holds: what the API first showed.
    assert stored == schedule_json(s)


# --- commands (the public JSON) ---------------------------------------------------------------

EXAMPLE = {
    "account_id": "a1" * 16,
    "amount": -150000,
    "description": "Rent",
    "category_id": "40" * 16,
    "schedule": {"frequency": "monthly", "day": 31},
    "start": "2025-01-31",
}


def create(body: dict[str, object]) -> Recurrence:
    cmd = CreateRecurrence.model_validate_json(json.dumps(body))
    return cmd.to_recurrence(recurrence_id="r1", currency="BRL", now=NOW)


class TestCommands:
    def test_the_documented_example(self) -> None:
        r = create(EXAMPLE)
        assert r.schedule == Monthly(31) and r.end is None
        shown = dump(RecurrenceOut.of(r))
        assert shown["schedule"] == {"frequency": "monthly", "day": 31, "interval": 1}
        assert shown["next_due"] == "2025-01-31"
        watermarked = UpdateRecurrence().apply_to(r, now=NOW)
        assert watermarked == r

    @pytest.mark.parametrize(
        "schedule",
        [
            {"frequency": "weekly", "weekday": "friday", "interval": 2},
            {"frequency": "yearly", "month": 2, "day": 29},
            {"frequency": "daily", "interval": 10},
            {"frequency": "monthly", "day": 15, "interval": 3},
        ],
    )
    def test_every_schedule_shape(self, schedule: dict[str, object]) -> None:
        r = create({**EXAMPLE, "schedule": schedule})
        assert schedule_json(r.schedule) == {"interval": 1, **schedule}

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"schedule": {"frequency": "yearly", "month": 4, "day": 31}}, "schedule.day"),
            ({"end": "2025-01-30"}, "end"),
            ({"amount": 0}, "amount"),
        ],
    )
    def test_domain_errors_name_the_field(self, change: dict[str, object], field: str) -> None:
        with pytest.raises(ValidationFailed) as e:
            create({**EXAMPLE, **change})
        assert [f.field for f in e.value.errors] == [field]

    @pytest.mark.parametrize(
        "change",
        [
            {"schedule": {"frequency": "hourly"}},
            {"schedule": {"frequency": "monthly", "day": 32}},
            {"schedule": {"frequency": "monthly", "day": "5"}},
            {"schedule": {"frequency": "weekly", "weekday": "fri"}},
            {"amount": 1.5},
            {"start": "31/01/2025"},
            {"color": "red"},
        ],
    )
    def test_shape_errors(self, change: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            create({**EXAMPLE, **change})

    def test_update(self) -> None:
        r = create({**EXAMPLE, "end": "2025-12-31"})
        later = datetime(2025, 3, 1)
        patch = UpdateRecurrence.model_validate_json(
            '{"end": null, "category_id": null,'
            ' "schedule": {"frequency": "weekly", "weekday": "monday"}}'
        )
        updated = patch.apply_to(r, now=later)
        assert (updated.end, updated.category_id, updated.schedule) == (
            None,
            None,
            Weekly(Weekday.MONDAY),
        )
        assert (updated.description, updated.created_at, updated.updated_at) == (
            "Rent",
            NOW,
            later,
        )
        moved = UpdateRecurrence.model_validate_json(json.dumps({"account_id": "a2" * 16}))
        assert moved.apply_to(r, now=later, currency="USD").currency == "USD"
        with pytest.raises(ValidationFailed, match="end"):
            UpdateRecurrence.model_validate_json('{"start": "2026-01-01"}').apply_to(r, now=later)
