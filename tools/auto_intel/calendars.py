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
# each with its name and optional first and last year: (rule, name, first, last).
Rule = tuple[tuple[object, ...], str, int, int]
_ALWAYS = (1, 9999)


def _r(rule: tuple[object, ...], name: str, first: int = _ALWAYS[0], last: int = _ALWAYS[1]) -> Rule:
    return (rule, name, first, last)


@dataclass(frozen=True)
class Country:
    """One country's national calendar: its rules and how it substitutes weekend holidays."""

    name: str
    rules: tuple[Rule, ...]
    # "us": Saturday -> Friday, Sunday -> Monday; "next": a weekend holiday moves to the next weekday
    # that is not a holiday (UK, Ireland's rule is none, Australia); None: no substitute days.
    substitute: str | None = None
    extra: tuple[tuple[str, str], ...] = ()  # one-off holidays: (ISO date, name)
    moved: tuple[tuple[str, str], ...] = ()  # a rule's day moved by decree that year: (from, to)


_NEW_YEAR = _r(("fixed", 1, 1), "New Year's Day")
_EPIPHANY = _r(("fixed", 1, 6), "Epiphany")
_GOOD_FRIDAY = _r(("easter", -2), "Good Friday")
_EASTER = _r(("easter", 0), "Easter Sunday")
_EASTER_MONDAY = _r(("easter", 1), "Easter Monday")
_ASCENSION = _r(("easter", 39), "Ascension Day")
_WHIT_SUNDAY = _r(("easter", 49), "Whit Sunday")
_WHIT_MONDAY = _r(("easter", 50), "Whit Monday")
_CORPUS_CHRISTI = _r(("easter", 60), "Corpus Christi")
_MAY_DAY = _r(("fixed", 5, 1), "May Day")
_ASSUMPTION = _r(("fixed", 8, 15), "Assumption Day")
_ALL_SAINTS = _r(("fixed", 11, 1), "All Saints' Day")
_ARMISTICE = _r(("fixed", 11, 11), "Armistice Day")
_IMMACULATE = _r(("fixed", 12, 8), "Immaculate Conception")
_CHRISTMAS = _r(("fixed", 12, 25), "Christmas Day")
_BOXING = _r(("fixed", 12, 26), "Boxing Day")

COUNTRIES: dict[str, Country] = {
    "US": Country("United States (federal)", (
        _NEW_YEAR, _r(("nth", 1, 0, 3), "Martin Luther King Jr. Day"),
        _r(("nth", 2, 0, 3), "Washington's Birthday"), _r(("nth", 5, 0, -1), "Memorial Day"),
        _r(("fixed", 6, 19), "Juneteenth", 2021), _r(("fixed", 7, 4), "Independence Day"),
        _r(("nth", 9, 0, 1), "Labor Day"), _r(("nth", 10, 0, 2), "Columbus Day"),
        _r(("fixed", 11, 11), "Veterans Day"), _r(("nth", 11, 3, 4), "Thanksgiving"), _CHRISTMAS), substitute="us"),
    "CA": Country("Canada (federal statutory)", (
        _NEW_YEAR, _GOOD_FRIDAY, _r(("fixed", 7, 1), "Canada Day"), _r(("nth", 9, 0, 1), "Labour Day"),
        _CHRISTMAS), substitute="next"),
    "GB": Country("United Kingdom (England and Wales)", (
        _NEW_YEAR, _GOOD_FRIDAY, _EASTER_MONDAY, _r(("nth", 5, 0, 1), "Early May Bank Holiday"),
        _r(("nth", 5, 0, -1), "Spring Bank Holiday"), _r(("nth", 8, 0, -1), "Summer Bank Holiday"),
        _CHRISTMAS, _BOXING), substitute="next",
        extra=(("2011-04-29", "Royal Wedding"), ("2012-06-05", "Diamond Jubilee"),
               ("2022-06-03", "Platinum Jubilee"), ("2022-09-19", "State Funeral of Queen Elizabeth II"),
               ("2023-05-08", "Coronation of King Charles III")),
        moved=(("2012-05-28", "2012-06-04"), ("2020-05-04", "2020-05-08"), ("2022-05-30", "2022-06-02"))),
    "IE": Country("Ireland", (
        _NEW_YEAR, _r(("brigid",), "St Brigid's Day", 2023), _r(("fixed", 3, 17), "St Patrick's Day"),
        _EASTER_MONDAY, _r(("nth", 5, 0, 1), "May Bank Holiday"), _r(("nth", 6, 0, 1), "June Bank Holiday"),
        _r(("nth", 8, 0, 1), "August Bank Holiday"), _r(("nth", 10, 0, -1), "October Bank Holiday"),
        _CHRISTMAS, _r(("fixed", 12, 26), "St Stephen's Day")),
        extra=(("2022-03-18", "Day of Remembrance and Recognition"),)),
    "DE": Country("Germany (national)", (
        _NEW_YEAR, _GOOD_FRIDAY, _EASTER_MONDAY, _MAY_DAY, _ASCENSION, _WHIT_MONDAY,
        _r(("fixed", 10, 3), "German Unity Day"), _CHRISTMAS, _BOXING),
        extra=(("2017-10-31", "Reformation Day"),)),
    "AT": Country("Austria", (
        _NEW_YEAR, _EPIPHANY, _EASTER_MONDAY, _MAY_DAY, _ASCENSION, _WHIT_MONDAY, _CORPUS_CHRISTI,
        _ASSUMPTION, _r(("fixed", 10, 26), "National Day"), _ALL_SAINTS, _IMMACULATE, _CHRISTMAS, _BOXING)),
    "FR": Country("France (metropolitan)", (
        _NEW_YEAR, _EASTER_MONDAY, _MAY_DAY, _r(("fixed", 5, 8), "Victory in Europe Day"), _ASCENSION,
        _WHIT_MONDAY, _r(("fixed", 7, 14), "Bastille Day"), _ASSUMPTION, _ALL_SAINTS, _ARMISTICE, _CHRISTMAS)),
    "BE": Country("Belgium", (
        _NEW_YEAR, _EASTER, _EASTER_MONDAY, _MAY_DAY, _ASCENSION, _WHIT_SUNDAY, _WHIT_MONDAY,
        _r(("fixed", 7, 21), "National Day"), _ASSUMPTION, _ALL_SAINTS, _ARMISTICE, _CHRISTMAS)),
    "NL": Country("Netherlands", (
        _NEW_YEAR, _GOOD_FRIDAY, _EASTER, _EASTER_MONDAY, _ASCENSION, _WHIT_SUNDAY, _WHIT_MONDAY,
        _CHRISTMAS, _BOXING,
        # King's Day, 27 April (26 April when the 27th is a Sunday) since 2014; Queen's Day before.
        _r(("kingsday",), "King's Day", 2014), _r(("queensday",), "Queen's Day", 1, 2013),
        # Liberation Day is a public holiday every fifth year.
        _r(("liberation",), "Liberation Day"))),
    "ES": Country("Spain (national)", (
        _NEW_YEAR, _EPIPHANY, _GOOD_FRIDAY, _MAY_DAY, _ASSUMPTION, _r(("fixed", 10, 12), "National Day"),
        _ALL_SAINTS, _r(("fixed", 12, 6), "Constitution Day"), _IMMACULATE, _CHRISTMAS)),
    "IT": Country("Italy", (
        _NEW_YEAR, _EPIPHANY, _EASTER, _EASTER_MONDAY, _r(("fixed", 4, 25), "Liberation Day"), _MAY_DAY,
        _r(("fixed", 6, 2), "Republic Day"), _ASSUMPTION, _ALL_SAINTS, _IMMACULATE, _CHRISTMAS,
        _r(("fixed", 12, 26), "St Stephen's Day")),
        extra=(("2011-03-17", "150th Anniversary of Unification"),)),
    "AU": Country("Australia (national)", (
        _NEW_YEAR, _r(("fixed", 1, 26), "Australia Day"), _GOOD_FRIDAY, _EASTER_MONDAY,
        _r(("fixed", 4, 25), "Anzac Day"), _CHRISTMAS, _BOXING), substitute="next",
        extra=(("2022-09-22", "National Day of Mourning"),)),
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
    return sorted({ts for ts, _name in named_holiday_starts(code, first_ts, last_ts)})


def named_holiday_starts(code: str, first_ts: float, last_ts: float) -> list[tuple[float, str]]:
    """``named_holidays`` for the years from ``first_ts`` to ``last_ts`` (epoch seconds): (the epoch
    seconds of the day's start (UTC), name), the forms ``forecast(holidays=..., holiday_names=...)``
    take."""
    years = range(datetime.fromtimestamp(first_ts, UTC).year, datetime.fromtimestamp(last_ts, UTC).year + 1)
    return [(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp(), name) for d, name in named_holidays(code, years)]


def country_holidays(code: str, years: Iterable[int]) -> list[date]:
    """The national public holidays of ``code`` (ISO 3166 alpha-2, e.g. ``US``, ``GB``; ``UK`` is
    accepted for ``GB``) in ``years``, sorted, substitute days included. Raises ``CalendarError``
    for a country without a built-in calendar, naming the ones there are."""
    return sorted({d for d, _name in named_holidays(code, years)})


def named_holidays(code: str, years: Iterable[int]) -> list[tuple[date, str]]:
    """``country_holidays`` with their names, sorted by date: (day, name). A substitute day (a
    weekend holiday observed on a weekday) is named after its holiday with " (substitute day)"; two
    holidays on the same day give two entries."""
    key = code.strip().upper()
    key = "GB" if key == "UK" else key
    country = COUNTRIES.get(key)
    if country is None:
        raise CalendarError(f"no built-in holiday calendar for {code!r}; built in: {', '.join(sorted(COUNTRIES))}"
                            " (pass others with --holidays FILE)")
    moves = {date.fromisoformat(a): date.fromisoformat(b) for a, b in country.moved}
    out: list[tuple[date, str]] = []
    for year in sorted(set(years)):
        days = [(d, name) for rule, name, first, last in country.rules if first <= year <= last
                and (d := _apply(rule, year)) is not None]
        days += [(date.fromisoformat(x), name) for x, name in country.extra if int(x[:4]) == year]
        days = [(moves.get(d, d), name) for d, name in days]
        taken = {d for d, _name in days}
        for d, name in sorted(days):
            if d.weekday() < 5 or country.substitute is None:
                continue
            if country.substitute == "us":
                s = d - timedelta(days=1) if d.weekday() == 5 else d + timedelta(days=1)
            else:
                s = d + timedelta(days=1)
                while s.weekday() >= 5 or s in taken:
                    s += timedelta(days=1)
            if s not in taken:
                days.append((s, f"{name} (substitute day)"))
            taken.add(s)
        out += days
    return sorted(out)
