"""Built-in public-holiday calendars for the forecaster (``levqor forecast --country US``).

National public holidays of a dozen countries from their rules (fixed dates, Easter-based dates,
"n-th weekday of a month") and, where the country moves a holiday that falls on a weekend to a
weekday, the substitute day as well: both days can change demand. No dependency and no data file:
a call costs well under a millisecond, where importing the ``holidays`` package alone takes about
half a second of the one-second budget of a forecast call.

The rules follow the national calendars as published by each government. They were checked
against the ``holidays`` package's national calendars for 2010-2035 when this module was written:
the same days for US, GB (England and Wales), DE, AT, FR, BE and NL; the differences are by choice.
Canada and Australia here also have the weekday that replaces a national holiday on a weekend
(the package's national calendars omit it; most provinces and states observe it); Spain here keeps
national holidays that fall on a Sunday (the package drops them, as the communities move them in
different ways); Italy's National Unity Day (a Sunday) and Ireland's 2001 day of mourning are not
here. Regional holidays (German states, Spanish communities, Canadian provinces, Australian and
US states) are not included; pass them with ``--holidays FILE``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

# Rule kinds:
#   ("fixed", month, day)                 a fixed date
#   ("easter", offset)                    Easter Sunday + offset days (Western)
#   ("nth", month, weekday, n)            n-th weekday (0 = Monday) of the month; n = -1: the last
#   ("kingsday",), ("queensday",), ("liberation",), ("brigid",): one-country rules, see _apply
# each with optional first and last year: (rule, first, last).
Rule = tuple[tuple[object, ...], int, int]
_ALWAYS = (1, 9999)


def _r(rule: tuple[object, ...], first: int = _ALWAYS[0], last: int = _ALWAYS[1]) -> Rule:
    return (rule, first, last)


@dataclass(frozen=True)
class Country:
    """One country's national calendar: its rules and how it substitutes weekend holidays."""

    name: str
    rules: tuple[Rule, ...]
    # "us": Saturday -> Friday, Sunday -> Monday; "next": a weekend holiday moves to the next weekday
    # that is not a holiday (UK, Ireland's rule is none, Australia); None: no substitute days.
    substitute: str | None = None
    extra: tuple[str, ...] = ()  # one-off holidays (ISO dates)
    moved: tuple[tuple[str, str], ...] = ()  # a rule's day moved by decree that year: (from, to)


_NEW_YEAR = _r(("fixed", 1, 1))
_GOOD_FRIDAY = _r(("easter", -2))
_EASTER = _r(("easter", 0))
_EASTER_MONDAY = _r(("easter", 1))
_ASCENSION = _r(("easter", 39))
_WHIT_SUNDAY = _r(("easter", 49))
_WHIT_MONDAY = _r(("easter", 50))
_CORPUS_CHRISTI = _r(("easter", 60))
_MAY_DAY = _r(("fixed", 5, 1))
_ASSUMPTION = _r(("fixed", 8, 15))
_ALL_SAINTS = _r(("fixed", 11, 1))
_CHRISTMAS = _r(("fixed", 12, 25))
_BOXING = _r(("fixed", 12, 26))

COUNTRIES: dict[str, Country] = {
    "US": Country("United States (federal)", (
        _NEW_YEAR, _r(("nth", 1, 0, 3)), _r(("nth", 2, 0, 3)), _r(("nth", 5, 0, -1)),
        _r(("fixed", 6, 19), 2021), _r(("fixed", 7, 4)), _r(("nth", 9, 0, 1)), _r(("nth", 10, 0, 2)),
        _r(("fixed", 11, 11)), _r(("nth", 11, 3, 4)), _CHRISTMAS), substitute="us"),
    "CA": Country("Canada (federal statutory)", (
        _NEW_YEAR, _GOOD_FRIDAY, _r(("fixed", 7, 1)), _r(("nth", 9, 0, 1)), _CHRISTMAS), substitute="next"),
    "GB": Country("United Kingdom (England and Wales)", (
        _NEW_YEAR, _GOOD_FRIDAY, _EASTER_MONDAY, _r(("nth", 5, 0, 1)), _r(("nth", 5, 0, -1)),
        _r(("nth", 8, 0, -1)), _CHRISTMAS, _BOXING), substitute="next",
        extra=("2011-04-29", "2012-06-05", "2022-06-03", "2022-09-19", "2023-05-08"),
        moved=(("2012-05-28", "2012-06-04"), ("2020-05-04", "2020-05-08"), ("2022-05-30", "2022-06-02"))),
    "IE": Country("Ireland", (
        _NEW_YEAR, _r(("brigid",), 2023), _r(("fixed", 3, 17)), _EASTER_MONDAY, _r(("nth", 5, 0, 1)),
        _r(("nth", 6, 0, 1)), _r(("nth", 8, 0, 1)), _r(("nth", 10, 0, -1)), _CHRISTMAS, _BOXING),
        extra=("2022-03-18",)),
    "DE": Country("Germany (national)", (
        _NEW_YEAR, _GOOD_FRIDAY, _EASTER_MONDAY, _MAY_DAY, _ASCENSION, _WHIT_MONDAY, _r(("fixed", 10, 3)),
        _CHRISTMAS, _BOXING), extra=("2017-10-31",)),
    "AT": Country("Austria", (
        _NEW_YEAR, _r(("fixed", 1, 6)), _EASTER_MONDAY, _MAY_DAY, _ASCENSION, _WHIT_MONDAY, _CORPUS_CHRISTI,
        _ASSUMPTION, _r(("fixed", 10, 26)), _ALL_SAINTS, _r(("fixed", 12, 8)), _CHRISTMAS, _BOXING)),
    "FR": Country("France (metropolitan)", (
        _NEW_YEAR, _EASTER_MONDAY, _MAY_DAY, _r(("fixed", 5, 8)), _ASCENSION, _WHIT_MONDAY,
        _r(("fixed", 7, 14)), _ASSUMPTION, _ALL_SAINTS, _r(("fixed", 11, 11)), _CHRISTMAS)),
    "BE": Country("Belgium", (
        _NEW_YEAR, _EASTER, _EASTER_MONDAY, _MAY_DAY, _ASCENSION, _WHIT_SUNDAY, _WHIT_MONDAY,
        _r(("fixed", 7, 21)), _ASSUMPTION, _ALL_SAINTS, _r(("fixed", 11, 11)), _CHRISTMAS)),
    "NL": Country("Netherlands", (
        _NEW_YEAR, _GOOD_FRIDAY, _EASTER, _EASTER_MONDAY, _ASCENSION, _WHIT_SUNDAY, _WHIT_MONDAY,
        _CHRISTMAS, _BOXING,
        # King's Day, 27 April (26 April when the 27th is a Sunday) since 2014; Queen's Day before.
        _r(("kingsday",), 2014), _r(("queensday",), 1, 2013),
        # Liberation Day is a public holiday every fifth year.
        _r(("liberation",)))),
    "ES": Country("Spain (national)", (
        _NEW_YEAR, _r(("fixed", 1, 6)), _GOOD_FRIDAY, _MAY_DAY, _ASSUMPTION, _r(("fixed", 10, 12)),
        _ALL_SAINTS, _r(("fixed", 12, 6)), _r(("fixed", 12, 8)), _CHRISTMAS)),
    "IT": Country("Italy", (
        _NEW_YEAR, _r(("fixed", 1, 6)), _EASTER, _EASTER_MONDAY, _r(("fixed", 4, 25)), _MAY_DAY,
        _r(("fixed", 6, 2)), _ASSUMPTION, _ALL_SAINTS, _r(("fixed", 12, 8)), _CHRISTMAS, _BOXING),
        extra=("2011-03-17",)),
    "AU": Country("Australia (national)", (
        _NEW_YEAR, _r(("fixed", 1, 26)), _GOOD_FRIDAY, _EASTER_MONDAY, _r(("fixed", 4, 25)), _CHRISTMAS,
        _BOXING), substitute="next", extra=("2022-09-22",)),
}


class CalendarError(ValueError):
    """An unknown country code."""


def easter(year: int) -> date:
    """Western (Gregorian) Easter Sunday: the anonymous Gregorian algorithm (Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th (1-based; -1: the last) ``weekday`` (0 = Monday) of a month."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1))
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _apply(rule: tuple[object, ...], year: int) -> date | None:
    kind = rule[0]
    if kind == "fixed":
        return date(year, int(rule[1]), int(rule[2]))  # type: ignore[call-overload]
    if kind == "easter":
        return easter(year) + timedelta(days=int(rule[1]))  # type: ignore[call-overload]
    if kind == "nth":
        return nth_weekday(year, int(rule[1]), int(rule[2]), int(rule[3]))  # type: ignore[call-overload]
    if kind == "kingsday":
        d = date(year, 4, 27)
        return d - timedelta(days=1) if d.weekday() == 6 else d
    if kind == "queensday":
        d = date(year, 4, 30)
        return d - timedelta(days=1) if d.weekday() == 6 else d
    if kind == "brigid":  # the first Monday of February, or 1 February when that is a Friday
        d = date(year, 2, 1)
        return d if d.weekday() == 4 else nth_weekday(year, 2, 0, 1)
    if kind == "liberation":
        return date(year, 5, 5) if year % 5 == 0 else None
    raise AssertionError(f"unknown rule {kind!r}")


def holiday_starts(code: str, first_ts: float, last_ts: float) -> list[float]:
    """``country_holidays`` for the years from ``first_ts`` to ``last_ts`` (epoch seconds), as the
    epoch seconds of each day's start (UTC), the form ``forecast(holidays=...)`` takes."""
    years = range(datetime.fromtimestamp(first_ts, UTC).year, datetime.fromtimestamp(last_ts, UTC).year + 1)
    return [datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() for d in country_holidays(code, years)]


def country_holidays(code: str, years: Iterable[int]) -> list[date]:
    """The national public holidays of ``code`` (ISO 3166 alpha-2, e.g. ``US``, ``GB``; ``UK`` is
    accepted for ``GB``) in ``years``, sorted, substitute days included. Raises ``CalendarError``
    for a country without a built-in calendar, naming the ones there are."""
    key = code.strip().upper()
    key = "GB" if key == "UK" else key
    country = COUNTRIES.get(key)
    if country is None:
        raise CalendarError(f"no built-in holiday calendar for {code!r}; built in: {', '.join(sorted(COUNTRIES))}"
                            " (pass others with --holidays FILE)")
    wanted = set(years)
    out: set[date] = set()
    for year in sorted(wanted):
        days = [d for rule, first, last in country.rules if first <= year <= last
                and (d := _apply(rule, year)) is not None]
        days += [date.fromisoformat(x) for x in country.extra if int(x[:4]) == year]
        moves = {date.fromisoformat(a): date.fromisoformat(b) for a, b in country.moved}
        days = [moves.get(d, d) for d in days]
        taken = set(days)
        for d in sorted(days):
            if d.weekday() < 5 or country.substitute is None:
                continue
            if country.substitute == "us":
                taken.add(d - timedelta(days=1) if d.weekday() == 5 else d + timedelta(days=1))
                continue
            s = d + timedelta(days=1)
            while s.weekday() >= 5 or s in taken:
                s += timedelta(days=1)
            taken.add(s)
        out |= taken
    return sorted(out)
