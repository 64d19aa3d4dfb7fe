"""The exchange calendar of the simulator: which minutes of which days each market trades, in
which phase, and to which trading day a session belongs.

Pure functions of (market, date). Times are Moscow time (MSK = UTC+3, no daylight saving since
26 October 2014), so every session of every market here falls inside one UTC day; the tables
below are kept in UTC minutes of the UTC day.

Sources (the exchange's announcements; third-party copies where the exchange page was not at
hand):

* Equity market (TQBR), main session 09:50-10:00 opening auction, 10:00-18:40 trading,
  18:40-18:50 closing auction: moex.com/n51152 (2022-09-12 schedule, unchanged since the
  pre-2020 main session).
* Evening session of shares 19:00-23:50 from 22 June 2020: moex.com/n29025, moex.com/s3095;
  19:00-19:05 opening auction, 19:05-23:50 trading: moex.com/n51152.
* Morning session of shares 06:50-09:50 (06:50-07:00 opening auction, continuous trading that
  runs on into the main session) from 6 December 2021: moex.com/n38448; cancelled on
  28 February 2022; resumed 27 January 2025 (RIA Novosti / vz.ru reports of the exchange's data,
  e.g. vz.ru/news/2025/11/21/1375405.html).
* 28 February - 23 March 2022: no trading in shares and futures (Bank of Russia decisions);
  trading resumed 24 March 2022 (pnp.ru, gazeta.ru 2022-03-24). The first weeks' shortened
  hours are not modelled. Evening session of shares and morning sessions of futures and FX
  resumed 12 September 2022: moex.com/n51152.
* Weekend sessions (Saturday/Sunday 09:50-19:00, 09:50-10:00 opening auction), part of the
  next trading day: shares from 1 March 2025 (erbp.ru 2025-02-25, press release of the
  exchange); futures from mid-August 2025 (incrussia.ru 2025-08-15; taken as 16 August).
  Weekends without a session in 2025 known from the exchange's notices (March-May); the 2026
  list: vedomosti.ru 2025-11-25, kommersant.ru/doc/8336281. Holidays traded in the weekend
  format in 2026 (23 February, 1 May, 12 June, 4 November): kommersant.ru/doc/8336281.
* Futures (RFUD): 10:00-14:00, intermediate clearing 14:00-14:05, 14:05-18:45, evening
  clearing 18:45-19:05, evening session 19:05-23:50 that belongs to the next trading day;
  morning session 07:00-10:00 from 1 March 2021 (financemagnates.com), cancelled 28 February
  2022, 09:00-10:00 from 12 September 2022 (moex.com/n51152), 08:50 later (interfax
  2025-11-05; the date of the move is not in the sources used, taken as 1 January 2025).
  From 23 March 2026 the Unified Trading Session: 08:50-23:50 without clearing breaks, the
  evening part of the current trading day (moex.com/ru/derivatives/unified-trading-session).
* FX (CETS): 10:00-23:50 until 1 March 2021, 07:00-23:50 from then (financemagnates.com),
  06:50-07:00 opening auction from 6 December 2021 (moex.com/n38448); 10:00-19:00 from
  28 February 2022 (approximate), 06:50-19:00 from 12 September 2022 (moex.com/n51152).
* Non-trading days: the exchange's yearly holiday notices, moex.com/n17269 (2018),
  marketscreener 2018-12-24 (2019), mondovisione 2020-02-18 and moex.com/n28671 (2020),
  newskitchen 2020-10-05 (2021), nkeu 2021-10-08 (2022), mondovisione 2023-10-19 and
  marketscreener 2023-05-30 (2023), nationalclearingcentre.com catalog/5701/68852 (2024),
  smart-lab.ru/blog/1119837.php quoting moex.com/n73701 (2025), kommersant.ru/doc/8336281
  (2026). Years without a full notice follow the rule those notices share: the public holidays
  1, 2 and 7 January, 23 February, 8 March, 1 and 9 May, 12 June, 4 November and 31 December
  are closed when they fall on a weekday, transferred days off are trading days.
* SPB Exchange (SPBX): 07:00-02:00 MSK on weekdays (approximate; its holidays are not
  modelled beyond 1 January).

Not modelled: per-instrument admission lists (every share here is admitted to every session),
the discrete auctions, trading halts, shortened days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np

DAY = 86_400
MINUTES = 1440
MSK_OFFSET_MIN = 180

SHARES, FUTURES, FX, SPBX = "shares", "futures", "fx", "spbx"
MARKETS = (SHARES, FUTURES, FX, SPBX)

# Trading status codes (field_TradingStatusCode of the official spec) and their texts.
CLOSED, BREAK, TRADING, CLOSING_AUCTION, OPENING_AUCTION = 18, 2, 17, 102, 119
STATUS_INFO = {
    CLOSED: "нет торгов / торги закрыты",
    BREAK: "перерыв в торгах",
    TRADING: "нормальный период торгов",
    CLOSING_AUCTION: "аукцион закрытия",
    OPENING_AUCTION: "аукцион открытия",
}
EVENING_FROM_MIN = 19 * 60 - MSK_OFFSET_MIN  # 19:00 MSK: the day's late part starts here


@dataclass(frozen=True)
class Segment:
    """One phase of a day: UTC minutes of the day [start, end)."""

    start: int
    end: int
    status: int


def _msk(hhmm: str) -> int:
    """'09:50' (Moscow time) -> UTC minute of the day."""
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes) - MSK_OFFSET_MIN


def _segments(*parts: tuple[str, str, int]) -> tuple[Segment, ...]:
    return tuple(Segment(_msk(a), _msk(b), status) for a, b, status in parts)


def _d(text: str) -> date:
    return date.fromisoformat(text)


# --- equity market -------------------------------------------------------------------------

_MORNING = (("06:50", "07:00", OPENING_AUCTION), ("07:00", "18:40", TRADING))
_MAIN = (("09:50", "10:00", OPENING_AUCTION), ("10:00", "18:40", TRADING))
_CLOSE = (("18:40", "18:50", CLOSING_AUCTION),)
_EVENING = (("19:00", "19:05", OPENING_AUCTION), ("19:05", "23:50", TRADING))
_SHARES_WEEKEND = _segments(("09:50", "10:00", OPENING_AUCTION), ("10:00", "19:00", TRADING))

_SHARES_ERAS: tuple[tuple[date, tuple[Segment, ...]], ...] = (
    (_d("2000-01-01"), _segments(*_MAIN, *_CLOSE)),
    (_d("2020-06-22"), _segments(*_MAIN, *_CLOSE, *_EVENING)),
    (_d("2021-12-06"), _segments(*_MORNING, *_CLOSE, *_EVENING)),
    (_d("2022-02-28"), ()),
    (_d("2022-03-24"), _segments(*_MAIN, *_CLOSE)),
    (_d("2022-09-12"), _segments(*_MAIN, *_CLOSE, *_EVENING)),
    (_d("2025-01-27"), _segments(*_MORNING, *_CLOSE, *_EVENING)),
)

# --- derivatives market --------------------------------------------------------------------

_FORTS_DAY = (("10:00", "14:00", TRADING), ("14:05", "18:45", TRADING))
_FORTS_EVENING = (("19:05", "23:50", TRADING),)
_FUTURES_WEEKEND = _segments(("09:50", "19:00", TRADING))

_FUTURES_ERAS: tuple[tuple[date, tuple[Segment, ...]], ...] = (
    (_d("2000-01-01"), _segments(*_FORTS_DAY, *_FORTS_EVENING)),
    (_d("2021-03-01"), _segments(("07:00", "14:00", TRADING), _FORTS_DAY[1], *_FORTS_EVENING)),
    (_d("2022-02-28"), ()),
    (_d("2022-03-24"), _segments(*_FORTS_DAY, *_FORTS_EVENING)),
    (_d("2022-09-12"), _segments(("09:00", "14:00", TRADING), _FORTS_DAY[1], *_FORTS_EVENING)),
    (_d("2025-01-01"), _segments(("08:50", "14:00", TRADING), _FORTS_DAY[1], *_FORTS_EVENING)),
    (_d("2026-03-23"), _segments(("08:50", "23:50", TRADING))),
)
UNIFIED_SESSION_FROM = _d("2026-03-23")  # from then the evening belongs to the current day

# --- FX and SPB ----------------------------------------------------------------------------

_FX_ERAS: tuple[tuple[date, tuple[Segment, ...]], ...] = (
    (_d("2000-01-01"), _segments(("10:00", "23:50", TRADING))),
    (_d("2021-03-01"), _segments(("07:00", "23:50", TRADING))),
    (_d("2021-12-06"), _segments(("06:50", "07:00", OPENING_AUCTION), ("07:00", "23:50", TRADING))),
    (_d("2022-02-28"), _segments(("10:00", "19:00", TRADING))),
    (_d("2022-09-12"), _segments(("06:50", "07:00", OPENING_AUCTION), ("07:00", "19:00", TRADING))),
)
_SPBX_DAY = (Segment(7 * 60 - MSK_OFFSET_MIN, 26 * 60 - MSK_OFFSET_MIN, TRADING),)

# --- non-trading days and weekend sessions -----------------------------------------------

_FIXED_HOLIDAYS = ((1, 1), (1, 2), (1, 7), (2, 23), (3, 8), (5, 1), (5, 9), (6, 12), (11, 4),
                   (12, 31))


def _dates(*texts: str) -> frozenset[date]:
    return frozenset(_d(t) for t in texts)


# Weekdays closed on every MOEX market, per year where the exchange's notice is known.
_CLOSED_BY_YEAR: dict[int, frozenset[date]] = {
    2018: _dates("2018-01-01", "2018-01-02", "2018-01-08", "2018-02-23", "2018-03-08",
                 "2018-05-01", "2018-05-09", "2018-06-12", "2018-11-05", "2018-12-31"),
    2019: _dates("2019-01-01", "2019-01-02", "2019-01-07", "2019-03-08", "2019-05-01",
                 "2019-05-09", "2019-06-12", "2019-11-04", "2019-12-31"),
    2020: _dates("2020-01-01", "2020-01-02", "2020-01-07", "2020-02-24", "2020-03-09",
                 "2020-05-01", "2020-05-11", "2020-06-12", "2020-06-24", "2020-07-01",
                 "2020-11-04", "2020-12-31"),
    2021: _dates("2021-01-01", "2021-01-07", "2021-02-23", "2021-03-08", "2021-05-03",
                 "2021-05-10", "2021-06-14", "2021-11-04", "2021-12-31"),
    2022: _dates("2022-01-07", "2022-02-23", "2022-03-08", "2022-05-02", "2022-05-09",
                 "2022-11-04"),
    2024: _dates("2024-01-01", "2024-01-02", "2024-02-23", "2024-03-08", "2024-05-01",
                 "2024-05-09", "2024-06-12", "2024-11-04", "2024-12-31"),
    2025: _dates("2025-01-01", "2025-01-02", "2025-01-07", "2025-05-01", "2025-05-09",
                 "2025-06-12", "2025-11-04", "2025-12-31"),
    2026: _dates("2026-01-01", "2026-01-02", "2026-01-07", "2026-12-31"),
}
# In 2022 the derivatives market traded on the public holidays the other markets closed.
_FUTURES_OPEN_2022 = _dates("2022-01-07", "2022-02-23", "2022-03-08", "2022-05-09",
                            "2022-11-04")
# Saturdays that were regular trading days (transferred working days).
_WORKING_SATURDAYS = _dates("2018-04-28", "2018-12-29", "2021-02-20", "2022-03-05")
# Public holidays traded in the weekend-session format (equities and futures), from 2026 on.
_WEEKEND_FORMAT_HOLIDAYS = ((2, 23), (5, 1), (6, 12), (11, 4))
# Public holidays without any trading, from 2026 on (also when they fall on a weekend).
_CLOSED_HOLIDAYS = ((1, 1), (1, 2), (1, 7), (3, 8), (5, 9), (12, 31))
_SHARES_WEEKENDS_FROM = _d("2025-03-01")
_FUTURES_WEEKENDS_FROM = _d("2025-08-16")
_NO_WEEKEND_SESSION = _dates(
    "2025-03-08", "2025-03-09", "2025-03-22", "2025-03-23", "2025-04-19", "2025-04-20",
    "2025-05-24", "2025-05-25", "2025-12-27", "2025-12-28",
    "2026-01-03", "2026-01-04", "2026-01-10", "2026-01-11", "2026-02-14", "2026-02-15",
    "2026-03-07", "2026-03-08", "2026-03-21", "2026-03-22", "2026-05-09", "2026-05-10",
    "2026-06-20", "2026-06-21", "2026-08-01", "2026-08-02", "2026-08-15", "2026-08-16",
    "2026-09-12", "2026-09-13", "2026-10-24", "2026-10-25", "2026-12-05", "2026-12-06",
)


def _era(eras: tuple[tuple[date, tuple[Segment, ...]], ...], day: date) -> tuple[Segment, ...]:
    found = eras[0][1]
    for since, segments in eras:
        if day >= since:
            found = segments
    return found


def _is_closed_weekday(day: date) -> bool:
    """A Monday-Friday on which the MOEX markets do not trade (a public holiday)."""
    known = _CLOSED_BY_YEAR.get(day.year)
    if known is not None:
        return day in known
    return (day.month, day.day) in _FIXED_HOLIDAYS


def _holiday_in_weekend_format(day: date) -> bool:
    return day.year >= 2026 and (day.month, day.day) in _WEEKEND_FORMAT_HOLIDAYS


def _weekend_format(day: date, market: str) -> bool:
    """A weekend or holiday with a weekend session for shares or futures."""
    if market not in (SHARES, FUTURES):
        return False
    since = _SHARES_WEEKENDS_FROM if market == SHARES else _FUTURES_WEEKENDS_FROM
    if day < since or day in _NO_WEEKEND_SESSION:
        return False
    if day.weekday() >= 5:
        return (day.month, day.day) not in _CLOSED_HOLIDAYS
    return _holiday_in_weekend_format(day)


def is_trading_day(market: str, day: date) -> bool:
    """A regular trading day (a weekday session, or a Saturday the exchange made a working
    day); weekend sessions belong to the next such day."""
    if market == SPBX:
        return day.weekday() < 5 and (day.month, day.day) != (1, 1)
    if day in _WORKING_SATURDAYS:
        return bool(_era(_eras(market), day))
    if day.weekday() >= 5:
        return False
    if market == FUTURES and day in _FUTURES_OPEN_2022:
        return True
    if _is_closed_weekday(day) or _holiday_in_weekend_format(day):
        return False
    return bool(_era(_eras(market), day))


def _eras(market: str) -> tuple[tuple[date, tuple[Segment, ...]], ...]:
    return {SHARES: _SHARES_ERAS, FUTURES: _FUTURES_ERAS, FX: _FX_ERAS}[market]


@lru_cache(maxsize=65_536)
def sessions(market: str, day: date) -> tuple[Segment, ...]:
    """The phases with trading of ``market`` on ``day`` (auctions and continuous trading), in
    UTC minutes of the day; empty on a day without trading. Between two segments the market is
    in a break, before the first and after the last it is closed."""
    if market not in MARKETS:
        raise ValueError(f"unknown market {market!r}; one of {MARKETS}")
    if market == SPBX:
        return _SPBX_DAY if is_trading_day(market, day) else ()
    if is_trading_day(market, day):
        return _era(_eras(market), day)
    if _weekend_format(day, market):
        return _SHARES_WEEKEND if market == SHARES else _FUTURES_WEEKEND
    return ()


def market_of(market_name: str, exchange: str) -> str:
    """The calendar of an instrument's market (``Spec.market``: FOND, FORTS, CURR, SPBX)."""
    if exchange == "SPBX" or market_name == "SPBX":
        return SPBX
    return {"FORTS": FUTURES, "CURR": FX}.get(market_name, SHARES)


def day_date(day: int) -> date:
    """Days since the epoch -> date."""
    return date(1970, 1, 1) + timedelta(days=int(day))


def day_number(value: date) -> int:
    return (value - date(1970, 1, 1)).days


def status_at(market: str, t: float) -> tuple[int, float, float]:
    """(status, since, until) of ``market`` at unix time ``t``: the phase in force and the unix
    times it started and ends (a closed period may span days)."""
    day = int(t // DAY)
    minute = (t - day * DAY) / 60.0
    segments = sessions(market, day_date(day))
    previous_end: float | None = None
    for segment in segments:
        if minute < segment.start:
            status = BREAK if previous_end is not None else CLOSED
            since = day * DAY + previous_end * 60 if previous_end is not None else \
                _last_close(market, day)
            return status, since, day * DAY + segment.start * 60.0
        if minute < segment.end:
            return segment.status, day * DAY + segment.start * 60.0, day * DAY + segment.end * 60.0
        previous_end = segment.end
    since = day * DAY + previous_end * 60 if previous_end is not None else _last_close(market, day)
    return CLOSED, since, _next_open(market, day + 1)


def _next_open(market: str, day: int) -> float:
    for candidate in range(day, day + 60):
        segments = sessions(market, day_date(candidate))
        if segments:
            return candidate * DAY + segments[0].start * 60.0
    return (day + 60) * DAY


def _last_close(market: str, day: int) -> float:
    for candidate in range(day - 1, day - 60, -1):
        segments = sessions(market, day_date(candidate))
        if segments:
            return candidate * DAY + segments[-1].end * 60.0
    return (day - 60) * DAY


# --- vectorised tables for generated history --------------------------------------------------

@dataclass(frozen=True)
class DayShapes:
    """Per-minute tables of the distinct day schedules of one market (rows = schedule id) and
    the schedule id of every day from ``first_day``."""

    first_day: int
    day_kind: np.ndarray  # (days,) int16
    mask: np.ndarray  # (kinds, 1440) bool: a candle exists
    auction: np.ndarray  # (kinds, 1440) bool: the one uncrossing trade of an auction
    vol: np.ndarray  # (kinds, 1440) float64: volatility multiplier, mean square 1 over the day
    volume: np.ndarray  # (kinds, 1440) float32: volume multiplier, about 1 in the main session
    trading_day: np.ndarray  # (days, 2) int64: trading day of the early / late part of each day

    def kinds(self, days: np.ndarray) -> np.ndarray:
        return self.day_kind[np.clip(days - self.first_day, 0, len(self.day_kind) - 1)]

    def traded_days(self) -> np.ndarray:
        """Whether each day from ``first_day`` has a session."""
        has_session: np.ndarray = np.any(self.mask, axis=1)
        return has_session[self.day_kind]


# Activity of each part of a day relative to the main session (volume per minute).
_WEIGHT_MORNING, _WEIGHT_EVENING, _WEIGHT_WEEKEND = 0.22, 0.2, 0.08
_OPENING_AUCTION_VOLUME, _CLOSING_AUCTION_VOLUME = 12.0, 35.0
_CLOSED_VOL = 0.6  # volatility of the (unseen) path while the market is closed, per minute


def _day_shape(market: str, segments: tuple[Segment, ...],
               weekend: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mask = np.zeros(MINUTES, dtype=bool)
    auction = np.zeros(MINUTES, dtype=bool)
    volume = np.zeros(MINUTES)
    main_start, main_end = _msk("10:00"), _msk("18:40")
    for segment in segments:
        if segment.status in (OPENING_AUCTION, CLOSING_AUCTION):
            last = segment.end - 1
            mask[last] = auction[last] = True
            volume[last] = (_OPENING_AUCTION_VOLUME if segment.status == OPENING_AUCTION
                            else _CLOSING_AUCTION_VOLUME)
            continue
        minutes = np.arange(segment.start, segment.end)
        mask[minutes] = True
        if weekend:
            weight = np.full(len(minutes), _WEIGHT_WEEKEND)
        else:
            weight = np.where(minutes < main_start, _WEIGHT_MORNING,
                              np.where(minutes < main_end, 1.0, _WEIGHT_EVENING))
        # U-shape: busier right after an open and before a close.
        since_open = minutes - segment.start
        to_close = segment.end - minutes
        shape = 1.0 + 2.0 * np.exp(-since_open / 20.0) + 1.2 * np.exp(-to_close / 30.0)
        if not weekend and segment.start < main_start < segment.end:  # the main open
            after = np.clip(minutes - main_start, 0, None)
            shape += np.where(minutes >= main_start, 2.0 * np.exp(-after / 20.0), 0.0)
        volume[minutes] = weight * shape / 1.6
    vol = np.where(mask, 0.35 + 0.65 * np.sqrt(volume), _CLOSED_VOL)
    vol[auction] = 0.9
    vol /= np.sqrt(np.mean(vol ** 2))
    return mask, auction, vol, volume.astype(np.float32)


@lru_cache(maxsize=8)
def day_shapes(market: str, first_day: int, count: int) -> DayShapes:
    """The tables of ``market`` for days first_day .. first_day + count - 1."""
    kinds: dict[tuple, int] = {}
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    day_kind = np.zeros(count, dtype=np.int16)
    for index in range(count):
        value = day_date(first_day + index)
        segments = sessions(market, value)
        weekend = bool(segments) and not is_trading_day(market, value)
        key = (segments, weekend)
        kind = kinds.get(key)
        if kind is None:
            kind = kinds[key] = len(rows)
            rows.append(_day_shape(market, segments, weekend))
        day_kind[index] = kind
    mask, auction, vol, volume = (np.stack([r[i] for r in rows]) for i in range(4))
    trading_day = _trading_days(market, first_day, count)
    return DayShapes(first_day, day_kind, mask, auction, vol, volume, trading_day)


def _trading_days(market: str, first_day: int, count: int) -> np.ndarray:
    """For each day: the trading day (days since the epoch) its early part and its late part
    (from 19:00 MSK) belong to. Weekend sessions belong to the next trading day; before the
    Unified Trading Session the futures' evening session belongs to the next trading day too."""
    out = np.zeros((count, 2), dtype=np.int64)
    following = first_day + count + 30
    for candidate in range(first_day + count + 29, first_day + count - 1, -1):
        if is_trading_day(market, day_date(candidate)):
            following = candidate
    late_moves = market == FUTURES
    for index in range(count - 1, -1, -1):
        day = first_day + index
        value = day_date(day)
        next_trading = following
        if is_trading_day(market, value):
            out[index, 0] = day
            following = day
        else:
            out[index, 0] = next_trading
        moves = late_moves and value < UNIFIED_SESSION_FROM
        out[index, 1] = next_trading if moves or out[index, 0] != day else out[index, 0]
    return out


def trading_day_starts(shapes: DayShapes, times: np.ndarray) -> np.ndarray:
    """Unix seconds of the start (00:00 UTC) of the trading day each time belongs to."""
    days = times // DAY
    late = ((times - days * DAY) >= EVENING_FROM_MIN * 60).astype(np.int64)
    index = np.clip(days - shapes.first_day, 0, len(shapes.trading_day) - 1)
    return shapes.trading_day[index, late] * DAY


def previous_trading_day(market: str, day: int) -> int:
    """The last regular trading day before ``day`` (days since the epoch)."""
    for candidate in range(day - 1, day - 60, -1):
        if is_trading_day(market, day_date(candidate)):
            return candidate
    return day - 60


def last_main_session(market: str, t: float) -> float:
    """A market time for a demo started at unix time ``t``: ``t`` itself when ``market`` is
    trading then; otherwise the same time of day on the most recent regular trading day when
    that time falls in its main session (10:00-18:40 MSK), else 12:00 MSK of that day."""
    status, _, _ = status_at(market, t)
    if status in (TRADING, OPENING_AUCTION, CLOSING_AUCTION):
        return t
    day = int(t // DAY)
    seconds = t - day * DAY
    main_start, main_end = _msk("10:00") * 60, _msk("18:40") * 60
    inside_main = main_start <= seconds < main_end
    candidate = day if is_trading_day(market, day_date(day)) and seconds >= main_end else \
        previous_trading_day(market, day)
    if not inside_main:
        seconds = _msk("12:00") * 60
    return candidate * DAY + seconds
