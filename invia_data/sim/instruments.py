"""The simulator's instrument universe: static specifications and the reference records built
from them (SECURITY, CURRENCY_PAIR, RISK_RATE as canonical ``schema.py`` dicts).

Prices are realistic levels of late 2026 but the market around them is synthetic. ``ref_price``
is the level the daily random walk reverts to; ``daily_vol`` is the daily log-volatility;
``minute_volume`` is the typical volume of a one-minute candle, in lots.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from . import calendar
from .bonds import BondTerms

NORMAL_TRADING = 17
NORMAL_TRADING_INFO = "нормальный период торгов"


@dataclass(frozen=True)
class Spec:
    symbol: str
    exchange: str
    board: str
    market: str
    short_name: str
    description: str
    type: str
    lot_size: int
    min_step: float
    decimals: int
    ref_price: float
    currency: str
    isin: str | None
    cfi_code: str
    face_value: float
    daily_vol: float
    minute_volume: float
    risk_category: int
    price_step: float | None = None  # value of one step in RUB (futures); min_step otherwise
    cancellation: str | None = None
    underlying: str | None = None
    boards: tuple[str, ...] = ()
    sector: str = ""  # drives the correlation of returns (see :mod:`.factors`)
    live_from_start: bool = False  # its order flow runs from the market's start, not on first use
    bond: BondTerms | None = None  # coupon terms of a bond (its price is percent of face)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.exchange, self.symbol)

    @property
    def is_future(self) -> bool:
        return self.market == "FORTS"

    @property
    def code(self) -> int:
        """A stable 32-bit number of the instrument, part of every random seed."""
        return zlib.crc32(f"{self.exchange}:{self.symbol}".encode())

    @cached_property
    def steps_per_unit(self) -> int:
        """1 / min_step (every step here divides 1 or is a whole number >= 1)."""
        return max(1, round(1 / self.min_step))

    def price(self, ticks: float) -> float:
        """Integer ticks -> a price rounded to the instrument's decimals."""
        if self.min_step >= 1:
            return float(ticks * self.min_step)
        return ticks / self.steps_per_unit

    def unit_value(self, price: float) -> float:
        """The money value of one unit at ``price``: a bond's price is percent of its face."""
        return price * self.face_value / 100.0 if self.bond is not None else price

    def prices(self, ticks: Any) -> Any:
        """Vectorised :meth:`price`: dividing by an integer gives the double nearest to the
        decimal price, so values print short (305.12, not 305.12000000000003)."""
        if self.min_step >= 1:
            return ticks * self.min_step
        return ticks / self.steps_per_unit


def _share(symbol: str, short: str, desc: str, lot: int, step: float, decimals: int, price: float,
           isin: str, face: float, vol: float, minute_volume: float, risk: int,
           cfi: str = "ESVUFR", exchange: str = "MOEX", board: str = "TQBR", *, sector: str,
           live: bool = True) -> Spec:
    return Spec(symbol=symbol, exchange=exchange, board=board, market="FOND", short_name=short,
                description=desc, type="PS" if cfi.startswith("EP") else "CS",
                lot_size=lot, min_step=step, decimals=decimals,
                ref_price=price, currency="RUB", isin=isin, cfi_code=cfi, face_value=face,
                daily_vol=vol, minute_volume=minute_volume, risk_category=risk,
                boards=(board, "SMAL", "SPEQ") if board == "TQBR" else (board,), sector=sector,
                live_from_start=live)


_MONTH_CODES = {3: "H", 6: "M", 9: "U", 12: "Z"}


def front_expiry(today: date) -> date:
    """The expiry of the nearest quarterly futures contract still trading on ``today``: the
    third Thursday of March, June, September or December (MOEX's quarterly cycle), or the
    trading day before it when the derivatives market does not trade that day."""
    year, month = today.year, today.month
    while True:
        if month in _MONTH_CODES:
            first = date(year, month, 1)
            expiry = first + timedelta(days=(3 - first.weekday()) % 7 + 14)
            while not calendar.is_trading_day(calendar.FUTURES, expiry):
                expiry -= timedelta(days=1)
            if expiry > today:
                return expiry
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


# The simulator lists the front contract of today, so its futures never expire under it.
FRONT_EXPIRY = front_expiry(datetime.now(timezone.utc).date())


def _future(base: str, code: str, underlying: str, price: float, *, face: float, vol: float,
            minute_volume: float, expiry: date = FRONT_EXPIRY, step: float = 1.0,
            decimals: int = 0, live: bool = True) -> Spec:
    symbol = f"{base}-{expiry.month}.{expiry.year % 100:02d}"
    return Spec(symbol=symbol, exchange="MOEX", board="RFUD", market="FORTS",
                short_name=f"{code}{_MONTH_CODES[expiry.month]}{expiry.year % 10}",
                description=f"Фьючерсный контракт {symbol}", type="futures", lot_size=1,
                min_step=step, decimals=decimals, ref_price=price, currency="RUB", isin=None,
                cfi_code="FFXCSX", face_value=face, daily_vol=vol, minute_volume=minute_volume,
                risk_category=3, price_step=step,
                cancellation=f"{expiry.isoformat()}T00:00:00.0000000", underlying=underlying,
                boards=("RFUD",), live_from_start=live)


# The instruments of the first simulator: their order flows run from the market's start.
_CORE: tuple[Spec, ...] = (
    _share("SBER", "Сбербанк", "Сбербанк России ПАО ао", 10, 0.01, 2, 305.0, "RU0009029540",
           3.0, 0.016, 2800, 1, sector="banks"),
    _share("GAZP", "ГАЗПРОМ ао", "Газпром ПАО ао", 10, 0.01, 2, 128.0, "RU0007661625",
           5.0, 0.018, 2600, 1, sector="oil_gas"),
    _share("LKOH", "ЛУКОЙЛ", "НК ЛУКОЙЛ ПАО ао", 1, 0.5, 1, 6450.0, "RU0009024277",
           0.025, 0.015, 600, 1, sector="oil_gas"),
    _share("GMKN", "ГМКНорНик", "ГМК Норильский никель ПАО ао", 10, 0.02, 2, 124.0,
           "RU0007288411", 1.0, 0.019, 900, 2, sector="metals"),
    _share("VTBR", "ВТБ ао", "Банк ВТБ ПАО ао", 1, 0.005, 3, 78.5, "RU000A0JP5V6",
           50.0, 0.021, 3500, 2, sector="banks"),
    _share("YDEX", "Яндекс", "МКПАО Яндекс ао", 1, 0.5, 1, 4150.0, "RU000A107T19",
           0.01, 0.022, 450, 2, sector="tech"),
    _share("ROSN", "Роснефть", "НК Роснефть ПАО ао", 1, 0.05, 2, 455.0, "RU000A0J2Q06",
           0.01, 0.017, 800, 2, sector="oil_gas"),
    _share("SOGN", "СОГН", "Invia ITS example share ао", 10, 0.01, 2, 281.0, "RU000A0JSOG7",
           1.0, 0.02, 300, 3, exchange="ITS", sector="other"),
    _future("SBRF", "SR", "SBER", 30800.0, face=100.0, vol=0.016, minute_volume=700),
    _future("Si", "Si", "USD", 81500.0, face=1000.0, vol=0.009, minute_volume=2200),
    Spec(symbol="USD000UTSTOM", exchange="MOEX", board="CETS", market="CURR",
         short_name="USDRUB_TOM", description="USD/RUB_TOM - USD/РУБ", type="FOR", lot_size=1000,
         min_step=0.0025, decimals=4, ref_price=80.9, currency="RUB", isin=None,
         cfi_code="IFXXXP", face_value=1.0, daily_vol=0.008, minute_volume=120, risk_category=4,
         underlying="USD", boards=("CETS",), sector="fx", live_from_start=True),
    Spec(symbol="CNYRUB_TOM", exchange="MOEX", board="CETS", market="CURR",
         short_name="CNYRUB_TOM", description="CNY/RUB_TOM - CNY/РУБ", type="FOR",
         lot_size=1000, min_step=0.001, decimals=3, ref_price=11.25, currency="RUB", isin=None,
         cfi_code="IFXXXP", face_value=1.0, daily_vol=0.007, minute_volume=900, risk_category=4,
         underlying="CNY", boards=("CETS",), sector="fx", live_from_start=True),
    Spec(symbol="EUR_RUB__TOM", exchange="MOEX", board="CETS", market="CURR",
         short_name="EURRUB_TOM", description="EUR/RUB_TOM - EUR/РУБ", type="FOR",
         lot_size=1000, min_step=0.0025, decimals=4, ref_price=93.4, currency="RUB", isin=None,
         cfi_code="IFXXXP", face_value=1.0, daily_vol=0.008, minute_volume=40, risk_category=4,
         underlying="EUR", boards=("CETS",), sector="fx", live_from_start=True),
    Spec(symbol="AAPL", exchange="SPBX", board="SPBX", market="SPBX", short_name="Apple",
         description="Apple Inc.", type="CS", lot_size=1, min_step=0.01, decimals=2,
         ref_price=232.0, currency="USD", isin="US0378331005", cfi_code="ESVUFR", face_value=0.0,
         daily_vol=0.017, minute_volume=60, risk_category=5, boards=("SPBX",),
         sector="us", live_from_start=True),
)

# More of the exchange: shares of every sector on TQBR and the front futures on them. Their order
# flows start on first use (a quote, a book, a subscription, today's trades), so the market
# starts and ticks as fast as with the core list; their history is there from the start.
# Lots, steps and ISINs are the exchange's (MOEX ISS, 2025); prices are late-2025 levels.
# (symbol, short name, description, lot, step, decimals, price, ISIN, daily vol, lots a minute,
#  risk category, sector)
_SHARES = (
    ("SBERP", "Сбербанк-п", "Сбербанк России ПАО ап", 10, 0.01, 2, 305.0, "RU0009029557",
     0.016, 900, 1, "banks"),
    ("T", "Т-Технологии", "МКПАО Т-Технологии ао", 1, 0.2, 1, 3150.0, "RU000A107UL4",
     0.021, 160, 1, "banks"),
    ("MOEX", "МосБиржа", "ПАО Московская Биржа ао", 10, 0.01, 2, 178.0, "RU000A0JR4A1",
     0.017, 700, 1, "banks"),
    ("BSPB", "БСП ао", "Банк Санкт-Петербург ПАО ао", 10, 0.01, 2, 365.0, "RU0009100945",
     0.018, 120, 2, "banks"),
    ("SVCB", "Совкомбанк", "ПАО Совкомбанк ао", 100, 0.005, 3, 13.6, "RU000A0ZZAC4",
     0.022, 900, 2, "banks"),
    ("CBOM", "МКБ ао", "Московский кредитный банк ПАО ао", 100, 0.001, 3, 7.2, "RU000A0JUG31",
     0.02, 300, 3, "banks"),
    ("NVTK", "НОВАТЭК ао", "ПАО НОВАТЭК ао", 1, 0.2, 1, 1120.0, "RU000A0DKVS5",
     0.019, 500, 1, "oil_gas"),
    ("SNGS", "Сургнфгз", "Сургутнефтегаз ПАО ао", 100, 0.005, 3, 22.6, "RU0008926258",
     0.015, 600, 1, "oil_gas"),
    ("SNGSP", "Сургнфгз-п", "Сургутнефтегаз ПАО ап", 100, 0.005, 3, 44.8, "RU0009029524",
     0.017, 900, 1, "oil_gas"),
    ("TATN", "Татнфть 3ао", "ПАО Татнефть им. В.Д.Шашина ао", 1, 0.1, 1, 585.0, "RU0009033591",
     0.017, 600, 1, "oil_gas"),
    ("TATNP", "Татнфть 3ап", "ПАО Татнефть им. В.Д.Шашина ап", 1, 0.1, 1, 570.0,
     "RU0006944147", 0.017, 300, 1, "oil_gas"),
    ("SIBN", "Газпрнефть", "Газпром нефть ПАО ао", 1, 0.05, 2, 505.0, "RU0009062467",
     0.016, 200, 1, "oil_gas"),
    ("TRNFP", "Транснф ап", "Транснефть ПАО ап", 1, 0.5, 1, 1380.0, "RU0009091573",
     0.016, 150, 1, "oil_gas"),
    ("BANEP", "Башнефт ап", "ПАО АНК Башнефть ап", 1, 0.5, 1, 1560.0, "RU0007976965",
     0.019, 60, 2, "oil_gas"),
    ("PLZL", "Полюс", "Полюс ПАО ао", 1, 0.2, 1, 2080.0, "RU000A0JNAA8",
     0.019, 250, 1, "metals"),
    ("CHMF", "СевСт-ао", "Северсталь ПАО ао", 1, 0.2, 1, 1050.0, "RU0009046510",
     0.018, 300, 1, "metals"),
    ("NLMK", "НЛМК ао", "НЛМК ПАО ао", 10, 0.02, 2, 112.0, "RU0009046452",
     0.019, 400, 1, "metals"),
    ("MAGN", "ММК", "ПАО Магнитогорский металлургический комбинат ао", 100, 0.005, 3, 32.4,
     "RU0009084396", 0.019, 500, 1, "metals"),
    ("ALRS", "АЛРОСА ао", "АЛРОСА ПАО ао", 10, 0.01, 2, 46.5, "RU0007252813",
     0.018, 900, 1, "metals"),
    ("RUAL", "РУСАЛ ао", "МКПАО Объединённая Компания РУСАЛ ао", 10, 0.005, 3, 33.2,
     "RU000A1025V3", 0.021, 900, 2, "metals"),
    ("ENPG", "ЭН+ГРУП ао", "МКПАО ЭН+ ГРУП ао", 1, 0.5, 1, 405.0, "RU000A100K72",
     0.022, 80, 2, "metals"),
    ("PHOR", "ФосАгро ао", "ФосАгро ПАО ао", 1, 1.0, 0, 6750.0, "RU000A0JRKT8",
     0.013, 40, 1, "chemicals"),
    ("OZON", "Озон", "МКПАО Озон ао", 1, 0.5, 1, 4180.0, "RU000A10CW95",
     0.024, 200, 2, "tech"),
    ("VKCO", "ВК ао", "МКПАО ВК ао", 1, 0.2, 1, 268.0, "RU000A106YF0",
     0.027, 250, 3, "tech"),
    ("POSI", "Позитив", "ПАО Группа Позитив ао", 1, 0.2, 1, 1095.0, "RU000A103X66",
     0.024, 150, 2, "tech"),
    ("ASTR", "Астра ао", "ПАО Группа Астра ао", 1, 0.05, 2, 352.0, "RU000A106T36",
     0.026, 250, 3, "tech"),
    ("HEAD", "Хэдхантер", "МКПАО Хэдхантер ао", 1, 1.0, 0, 3220.0, "RU000A107662",
     0.021, 60, 2, "tech"),
    ("MTSS", "МТС-ао", "МТС ПАО ао", 10, 0.05, 2, 218.0, "RU0007775219",
     0.016, 400, 1, "telecom"),
    ("RTKM", "Ростел -ао", "Ростелеком ПАО ао", 10, 0.01, 2, 61.4, "RU0008943394",
     0.017, 500, 1, "telecom"),
    ("MGNT", "Магнит ао", "Магнит ПАО ао", 1, 0.5, 1, 3890.0, "RU000A0JKQU8",
     0.018, 120, 1, "retail"),
    ("X5", "ИКС 5", "МКПАО Корпоративный центр ИКС 5 ао", 1, 0.5, 1, 2790.0, "RU000A108X38",
     0.017, 150, 1, "retail"),
    ("LENT", "Лента ао", "МКПАО Лента ао", 1, 0.5, 1, 1620.0, "RU000A102S15",
     0.018, 30, 2, "retail"),
    ("IRAO", "ИнтерРАОао", "Интер РАО ЕЭС ПАО ао", 100, 0.0005, 4, 3.31, "RU000A0JPNM1",
     0.015, 1200, 1, "utilities"),
    ("HYDR", "РусГидро", "ПАО РусГидро ао", 1000, 0.0001, 4, 0.5116, "RU000A0JPKH7",
     0.016, 900, 1, "utilities"),
    ("FEES", "Россети", "ПАО Россети ао", 10000, 0.000002, 6, 0.0734, "RU000A0JPNN9",
     0.017, 600, 2, "utilities"),
    ("UPRO", "Юнипро ао", "ПАО Юнипро ао", 1000, 0.001, 3, 1.712, "RU000A0JNGA5",
     0.014, 300, 2, "utilities"),
    ("PIKK", "ПИК ао", "ПАО ПИК-специализированный застройщик ао", 1, 0.1, 1, 515.0,
     "RU000A0JP7J7", 0.022, 120, 2, "real_estate"),
    ("SMLT", "Самолет ао", "ПАО ГК Самолет ао", 1, 0.5, 1, 1090.0, "RU000A0ZZG02",
     0.028, 80, 3, "real_estate"),
    ("AFLT", "Аэрофлот", "Аэрофлот ПАО ао", 10, 0.01, 2, 57.6, "RU0009062285",
     0.019, 1500, 1, "transport"),
    ("FLOT", "Совкомфлот", "ПАО Совкомфлот ао", 10, 0.01, 2, 84.2, "RU000A0JXNU8",
     0.02, 500, 2, "transport"),
    ("AFKS", "Система ао", "АФК Система ПАО ао", 100, 0.001, 3, 14.9, "RU000A0DQZE3",
     0.023, 900, 2, "holdings"),
)

_MORE: tuple[Spec, ...] = tuple(
    _share(symbol, short, desc, lot, step, decimals, price, isin, 1.0, vol, minute_volume, risk,
           cfi="EPNXFR" if desc.endswith(" ап") else "ESVUFR", sector=sector, live=False)
    for (symbol, short, desc, lot, step, decimals, price, isin, vol, minute_volume, risk, sector)
    in _SHARES
) + (
    _future("GAZR", "GZ", "GAZP", 12900.0, face=100.0, vol=0.018, minute_volume=500, live=False),
    _future("LKOH", "LK", "LKOH", 64800.0, face=10.0, vol=0.015, minute_volume=150, live=False),
    _future("ROSN", "RN", "ROSN", 45700.0, face=100.0, vol=0.017, minute_volume=120, live=False),
    _future("VTBR", "VB", "VTBR", 7880.0, face=100.0, vol=0.021, minute_volume=300, live=False),
    _future("GMKN", "GK", "GMKN", 12450.0, face=100.0, vol=0.019, minute_volume=150, live=False),
    _future("Eu", "Eu", "EUR", 94300.0, face=1000.0, vol=0.009, minute_volume=400, live=False),
    _future("CNY", "CR", "CNY", 11.35, face=1.0, vol=0.007, minute_volume=1500, step=0.001,
            decimals=3, live=False),
)



def _ofz(number: int, secid: str, isin: str, rate: float, issue: date, maturity: date,
         price: float, minute_volume: float) -> Spec:
    """An OFZ-PD on TQOB: price in percent of a 1000 RUB face, step 0.001 (see :mod:`.bonds`)."""
    return Spec(symbol=secid, exchange="MOEX", board="TQOB", market="FOND",
                short_name=f"ОФЗ {number}", description=f"ОФЗ-ПД {number} {maturity:%d/%m/%y}",
                type="EUSOV", lot_size=1, min_step=0.001, decimals=3, ref_price=price,
                currency="RUB", isin=isin, cfi_code="DBFUFR", face_value=1000.0,
                daily_vol=0.004, minute_volume=minute_volume, risk_category=1,
                boards=("TQOB",), sector="ofz",
                bond=BondTerms(face=1000.0, rate=rate, issue=issue, maturity=maturity))


# Federal loan bonds (OFZ-PD): numbers, codes, ISINs, coupons and maturities of the exchange's;
# the coupon schedule is the regular 182-day one counted back from maturity.
_BONDS: tuple[Spec, ...] = (
    _ofz(26212, "SU26212RMFS9", "RU000A0JTK38", 0.0705, date(2013, 1, 23), date(2028, 1, 19),
         91.35, 400),
    _ofz(26218, "SU26218RMFS6", "RU000A0JVW48", 0.085, date(2016, 10, 19), date(2031, 9, 17),
         84.6, 300),
    _ofz(26221, "SU26221RMFS0", "RU000A0JXFM1", 0.077, date(2017, 2, 15), date(2033, 3, 23),
         77.9, 500),
)

INSTRUMENTS: tuple[Spec, ...] = _CORE + _MORE + _BONDS

CURRENCY_PAIRS = (
    ("USD", "RUB", "USD000UTSTOM"),
    ("CNY", "RUB", "CNYRUB_TOM"),
    ("EUR", "RUB", "EUR_RUB__TOM"),
)

RISK_CATEGORIES = {1: "LowRisk", 2: "StandardRisk", 3: "HighRisk", 4: "Special", 5: "StandardRisk"}

# Base risk rates (percent) per instrument risk category: (rate_down, rate_up).
_BASE_RATES = {1: (12.0, 13.5), 2: (16.0, 18.0), 3: (22.0, 24.5), 4: (9.0, 9.5), 5: (30.0, 33.0)}


def security_record(spec: Spec, last_price: float, rating: float,
                    bond_yield: float | None = None) -> dict[str, Any]:
    """The canonical SECURITY record of ``spec``; limits and margins follow ``last_price``;
    ``bond_yield`` (percent) is a bond's yield at that price."""
    limit = 0.2 if not spec.is_future else 0.1
    margin = last_price * (0.14 if spec.is_future else 0.0)
    record: dict[str, Any] = {
        "symbol": spec.symbol,
        "short_name": spec.short_name,
        "description": spec.description,
        "exchange": spec.exchange,
        "market": spec.market,
        "board": spec.board,
        "primary_board": spec.board,
        "type": spec.type,
        "lot_size": float(spec.lot_size),
        "face_value": spec.face_value,
        "currency": spec.currency,
        "nominal_currency": spec.currency,
        "settlement_currency": spec.currency,
        "underlying_currency": spec.underlying if spec.market == "CURR" else None,
        "isin": spec.isin,
        "cfi_code": spec.cfi_code,
        "min_step": spec.min_step,
        "price_step": spec.price_step if spec.price_step is not None else spec.min_step,
        "round_to": spec.decimals,
        "price_max": round_to_step(spec, last_price * (1 + limit)),
        "price_min": round_to_step(spec, last_price * (1 - limit)),
        "rating": float(rating),
        "trading_status": NORMAL_TRADING,
        "trading_status_info": NORMAL_TRADING_INFO,
        "cancellation": spec.cancellation or "2099-01-01T00:00:00.0000000",
        "margin_buy": round(margin, 2),
        "margin_sell": round(margin * 1.02, 2),
        "margin_rate": round(margin / last_price, 4) if margin else 0.0,
        "theor_price": 0.0,
        "theor_price_limit": 0.0,
        "volatility": 0.0,
        "yield": bond_yield,
        "complex_product_category": "2" if spec.is_future else "",
        "price_multiplier": 1.0,
        "price_shown_units": 1.0,
        "strike_price": 0.0,
        "end_expiration": spec.cancellation or "2099-01-01T00:00:00.0000000",
        "fixed_spot_discount": 0.0,
        "projected_spot_discount": 0.0,
        "underlying_symbol": spec.underlying or "",
        "option_side": "",
    }
    for risk, factor in (("low", 0.10), ("standard", 0.14), ("high", 0.2), ("special", 0.28)):
        value = round(last_price * factor, 2) if spec.is_future else 0.0
        record[f"initial_margin_{risk}_risk_long"] = value
        record[f"initial_margin_{risk}_risk_short"] = round(value * 1.02, 2)
    return record


def round_to_step(spec: Spec, price: float) -> float:
    return spec.price(round(price / spec.min_step))


def currency_pair_records() -> list[dict[str, Any]]:
    return [{"first_code": a, "second_code": b, "symbol_tom": s} for a, b, s in CURRENCY_PAIRS]


def risk_rate_records(risk_category_id: int) -> list[dict[str, Any]]:
    """RISK_RATE records of every instrument for one client risk category (1..5)."""
    out = []
    scale = {1: 0.8, 2: 1.0, 3: 1.3, 4: 1.0, 5: 1.0}.get(risk_category_id, 1.0)
    for number, spec in enumerate(INSTRUMENTS):
        down, up = _BASE_RATES[spec.risk_category]
        out.append({
            "id": 65400 + number * 10 + risk_category_id,
            "instrument": spec.symbol,
            "exchange": spec.exchange,
            "risk_category_id": risk_category_id,
            "security_risk_category_id": float(spec.risk_category),
            "asset_type": "bond" if spec.bond is not None else {
                "FOND": "stock", "SPBX": "stock", "FORTS": "futures", "CURR": "currency"}[spec.market],
            "underlying_asset": spec.underlying if spec.is_future else None,
            "set_name": None,
            "isin": spec.isin,
            "currency_code": spec.currency,
            "rate_up": round(up * scale, 4),
            "rate_down": round(down * scale, 4),
            "rate_symmetric": round((up + down) / 2 * scale * 1.05, 4),
            "is_short_sell_possible": spec.market != "SPBX",
            "is_marginal": spec.risk_category <= 3,
            "set_rate": 0.0,
            "sgn_r": 1 if spec.is_future else 0,
        })
    return out
