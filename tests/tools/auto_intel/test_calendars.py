"""Built-in national holiday calendars (``levqor forecast --country``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.tools.auto_intel.test_models import cli, csv_text, one_line_error
from tools.auto_intel import series_io
from tools.auto_intel.calendars import (
    COUNTRIES,
    CalendarError,
    country_holidays,
    easter,
    holiday_starts,
    named_holidays,
)
from tools.auto_intel.series_io import forecast_csv


def test_easter_on_known_years() -> None:
    known = {2000: "2000-04-23", 2008: "2008-03-23", 2011: "2011-04-24", 2019: "2019-04-21",
             2024: "2024-03-31", 2025: "2025-04-20", 2038: "2038-04-25"}
    for year, day in known.items():
        assert easter(year) == date.fromisoformat(day)


def test_us_federal_holidays_with_observed_days() -> None:
    days = {str(d) for d in country_holidays("us", [2026])}
    assert {"2026-01-01", "2026-01-19", "2026-02-16", "2026-05-25", "2026-06-19", "2026-07-04",
            "2026-09-07", "2026-10-12", "2026-11-11", "2026-11-26", "2026-12-25"} <= days
    assert "2026-07-03" in days  # 4 July is a Saturday: observed on the Friday
    assert "2020-06-19" not in {str(d) for d in country_holidays("US", [2020])}  # Juneteenth from 2021
    assert "2022-12-26" in {str(d) for d in country_holidays("US", [2022])}  # Christmas on a Sunday


def test_substitutes_moves_and_one_country_rules() -> None:
    gb = {str(d) for d in country_holidays("UK", [2020, 2022])}
    assert "2020-05-08" in gb and "2020-05-04" not in gb  # VE-day move of the May bank holiday
    assert {"2022-12-26", "2022-12-27"} <= gb  # Christmas on a Sunday: Boxing Day Monday, substitute Tuesday
    assert "2022-09-19" in gb  # a one-off
    de = country_holidays("DE", [2024])
    assert len(de) == 9 and date(2024, 5, 9) in de and date(2024, 5, 20) in de  # Ascension, Whit Monday
    assert date(2021, 12, 27) not in country_holidays("DE", [2021])  # no substitutes in Germany
    assert date(2025, 4, 26) in country_holidays("NL", [2025])  # King's Day moved off a Sunday
    assert date(2030, 2, 1) in country_holidays("IE", [2030])  # St Brigid's: 1 Feb when a Friday
    assert date(2024, 2, 5) in country_holidays("IE", [2024])
    for code in COUNTRIES:
        got = country_holidays(code, range(2015, 2031))
        assert got == sorted(set(got)) and len(got) >= 5 * 16, code


def test_unknown_country_names_the_built_in_ones() -> None:
    with pytest.raises(CalendarError, match="no built-in holiday calendar for 'XX'; built in: AT, AU"):
        country_holidays("XX", [2024])


def test_holiday_starts_cover_history_and_horizon() -> None:
    first = datetime(2023, 12, 1, tzinfo=UTC).timestamp()
    last = datetime(2024, 1, 10, tzinfo=UTC).timestamp()
    starts = holiday_starts("US", first, last)
    assert datetime(2023, 12, 25, tzinfo=UTC).timestamp() in starts
    assert datetime(2024, 1, 1, tzinfo=UTC).timestamp() in starts
    assert all(s % 86400 == 0 for s in starts)


def us_load() -> tuple[np.ndarray, np.ndarray]:
    """Sixteen weeks of 30-minute load from 1 September 2023 to Christmas Eve; US federal holidays
    (and their observed days) at 40 % of the usual load."""
    start = datetime(2023, 9, 1, tzinfo=UTC).timestamp()
    n = (datetime(2023, 12, 25, tzinfo=UTC).timestamp() - start) // 1800
    t = np.arange(int(n))
    rng = np.random.default_rng(5)
    shape = 1.0 + 0.6 * np.sin(2 * np.pi * (t % 48) / 48 - 1.5)
    week = np.where((t // 48 + 4) % 7 >= 5, 0.7, 1.0)  # 1 Sept 2023 is a Friday
    ts = start + t * 1800.0
    off = np.isin(np.floor(ts / 86400.0) * 86400.0, holiday_starts("US", ts[0], ts[-1]))
    return ts, 1000 * shape * week * np.where(off, 0.4, 1.0) * np.exp(rng.normal(0, 0.05, len(t)))


def test_country_calendar_forecasts_christmas_low() -> None:
    ts, y = us_load()
    lines = csv_text(ts, y).splitlines()

    class Sink:
        def write(self, _: str) -> None: ...
        def flush(self) -> None: ...

    told = forecast_csv(lines, Sink(), horizon=48, country="US")  # type: ignore[arg-type]
    plain = forecast_csv(lines, Sink(), horizon=48)  # type: ignore[arg-type]
    assert np.mean(told.yhat) < 0.6 * np.mean(plain.yhat)


def test_cli_country_option(tmp_path: Path) -> None:
    ts, y = us_load()
    path = tmp_path / "load.csv"
    path.write_text(csv_text(ts, y))
    told = cli("forecast", "--horizon", "48", "--country", "us", str(path))
    assert told.returncode == 0, told.stderr
    assert len(told.stdout.splitlines()) == 49
    summary = told.stderr.strip()
    assert summary.startswith(f"levqor forecast: {len(y)} rows, step 30 min; seasons found: daily")
    assert "; method: " in summary and "holiday dates given (" in summary and len(summary.splitlines()) == 1
    err = one_line_error(cli("forecast", "--horizon", "3", "--country", "Atlantis", str(path)))
    assert err.startswith("levqor forecast: --country: no built-in holiday calendar for 'Atlantis'")


def test_every_rule_has_a_name_and_substitutes_are_named_after_their_holiday() -> None:
    us = dict((str(d), name) for d, name in named_holidays("US", [2021]))
    assert us["2021-11-25"] == "Thanksgiving" and us["2021-07-04"] == "Independence Day"
    assert us["2021-07-05"] == "Independence Day (substitute day)"
    gb = named_holidays("GB", [2021])
    assert ("Boxing Day (substitute day)" in {n for d, n in gb if d == date(2021, 12, 28)})
    for code in COUNTRIES:
        got = named_holidays(code, range(2015, 2031))
        assert all(name for _d, name in got)
        assert sorted({d for d, _n in got}) == country_holidays(code, range(2015, 2031))


def test_country_calendar_passes_its_names_to_the_forecaster(monkeypatch: pytest.MonkeyPatch) -> None:
    ts, y = us_load()
    seen: dict[str, object] = {}
    real = series_io.forecast

    def spy(*args: object, **kwargs: object) -> object:
        seen.update(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(series_io, "forecast", spy)

    class Sink:
        def write(self, _: str) -> None: ...
        def flush(self) -> None: ...

    forecast_csv(csv_text(ts, y).splitlines(), Sink(), horizon=48, country="US",  # type: ignore[arg-type]
                 holidays=[(datetime(2023, 12, 25, tzinfo=UTC).timestamp(), "Xmas"),
                           (datetime(2023, 10, 31, tzinfo=UTC).timestamp(), None)])
    by_day = {datetime.fromtimestamp(float(t), UTC).date(): n
              for t, n in zip(seen["holidays"], seen["holiday_names"], strict=True)}  # type: ignore[call-overload]
    assert by_day[date(2023, 11, 23)] == "Thanksgiving" and by_day[date(2023, 9, 4)] == "Labor Day"
    assert by_day[date(2023, 12, 25)] == "Xmas"  # the file's name wins on its day
    assert by_day[date(2023, 10, 31)] is None
    assert list(by_day.values()).count("Xmas") == 1 and "Christmas Day" not in by_day.values()
