"""The demo login's portfolios and the seeded demo trader that keeps them moving.

Login ``P039004``, agreement ``39004``; portfolios ``D39004`` (MOEX stock market), ``G39004``
(MOEX FX market: trades in ``USD000UTSTOM`` & co. move currency balances) and ``7500GHC`` (MOEX
derivatives, FORTS). Everything is derived from a few stored facts, so the records always agree:

* opening state = holdings 30 days before the simulator started + the generated past-session own
  trades (:meth:`Portfolios.own_trades_history`) since then;
* current state = opening state + this session's own trades (fills of the demo trader's orders
  against the live books, passive or aggressive);
* positions, summary, risk, FORTS risk and legacy money are computed from the current state at
  current prices.

The trader is one more event stream of the market (``step(t)`` returns its next event time): it
places limit orders near or through the spread, cancels working ones, places and triggers stop
orders, and revalues the portfolios every few seconds. Every change is appended to a per-portfolio
log read by :meth:`Portfolios.changes` (the server's portfolio subscriptions).
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .book import BUY, SELL
from .history import DAY, iso
from .instruments import Spec, risk_rate_records

if TYPE_CHECKING:
    from .market import Market

LOGIN = "P039004"
AGREEMENT = "39004"
STOCK, FX, FORTS = "D39004", "G39004", "7500GHC"
HISTORY_DAYS = 30
HISTORY_KEEP = 5000  # own trades of past sessions kept
REVALUE_EVERY = 5.0  # market seconds (at least 0.2 real seconds when the clock runs fast)
TRADER_EVERY = 12.0  # mean market seconds between the trader's actions (at least 0.1 real s)
CHANGE_LOG = 20_000
COMMISSION = {STOCK: 0.0005, FX: 0.0003, FORTS: 0.0}
FORTS_FEE = 2.0  # RUB per contract
RISK_CATEGORY = 2


@dataclass
class Holding:
    units: float = 0.0
    avg_price: float = 0.0

    def apply(self, signed_units: float, price: float) -> None:
        """Average-cost accounting: adding keeps a weighted average, reducing keeps the average,
        crossing zero starts a new one at ``price``."""
        new = self.units + signed_units
        if self.units == 0 or (self.units > 0) == (signed_units > 0):
            total = abs(self.units) + abs(signed_units)
            self.avg_price = (abs(self.units) * self.avg_price + abs(signed_units) * price) / total
        elif new != 0 and (new > 0) != (self.units > 0):
            self.avg_price = price
        self.units = new
        if self.units == 0:
            self.avg_price = 0.0


@dataclass
class Account:
    id: str
    kind: str  # "stock" | "fx" | "forts"
    keys: list[tuple[str, str]]
    holdings: dict[tuple[str, str], Holding] = field(default_factory=dict)
    money: dict[str, float] = field(default_factory=dict)
    opening: dict[Any, Holding] = field(default_factory=dict)  # key or currency -> at open
    orders: dict[str, dict] = field(default_factory=dict)
    stop_orders: dict[str, dict] = field(default_factory=dict)
    trades: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    commission: float = 0.0
    fee: float = 0.0
    seq: int = 0
    log: deque = field(default_factory=lambda: deque(maxlen=CHANGE_LOG))
    last_values: dict[tuple[str, str], dict] = field(default_factory=dict)
    target: dict[tuple[str, str], float] = field(default_factory=dict)  # units the trader keeps near


class Portfolios:
    """State and records of the demo portfolios; also the demo trader's event stream."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.login = LOGIN
        self.agreements = (AGREEMENT,)
        self.ids = (STOCK, FX, FORTS)
        self._rng = np.random.default_rng([market.seed, 0x7EAD])
        self._uniform: list[float] = []
        self._order_no = int(market.start // 60) * 1000
        self._specs = {key: market.spec(key) for key in market.keys()}
        by_market = {m: [k for k, s in self._specs.items()
                         if s.market == m and k[0] == "MOEX" and s.live_from_start]
                     for m in ("FOND", "CURR", "FORTS")}
        self.accounts = {
            STOCK: Account(STOCK, "stock", by_market["FOND"]),
            FX: Account(FX, "fx", by_market["CURR"]),
            FORTS: Account(FORTS, "forts", by_market["FORTS"]),
        }
        self._start_day = int(market.start // DAY)
        self._session_day = self._start_day
        for account in self.accounts.values():
            self._build_history(account)
        self.next_time = market.start
        self._revalue_every = max(REVALUE_EVERY, 0.2 * market.speed)
        self._trader_every = max(TRADER_EVERY, 0.1 * market.speed)
        self._next_revalue = market.start + self._revalue_every
        self._opening_moves()

    # --- random numbers --------------------------------------------------------------------

    def _u(self) -> float:
        if not self._uniform:
            self._uniform = self._rng.random(1024).tolist()
        return self._uniform.pop()

    def _pick(self, items: list) -> Any:
        return items[min(len(items) - 1, int(self._u() * len(items)))]

    # --- opening state from generated history -----------------------------------------------

    def _build_history(self, account: Account) -> None:
        history = self.market.history
        first_day = self._start_day - HISTORY_DAYS
        rng = np.random.default_rng([self.market.seed, 0x415, zlib.crc32(account.id.encode())])
        account.money["RUB"] = {"stock": 1_500_000.0, "fx": 3_000_000.0, "forts": 700_000.0}[
            account.kind]
        if account.kind == "fx":
            account.money.update({"USD": 5_000.0, "CNY": 40_000.0, "EUR": 2_000.0})
        for key in account.keys:
            spec = self._specs[key]
            if account.kind == "fx":
                account.target[key] = account.money[spec.underlying or "USD"]
                continue
            base_price = spec.price(int(history.day_open_close(spec, first_day)[0]))
            lots = 40 if account.kind == "stock" else 3
            account.holdings[key] = Holding(float(lots * spec.lot_size), base_price)
            account.target[key] = float(lots * spec.lot_size)
        number = 0
        for day in range(first_day, self._start_day):
            drawn = []
            for key in account.keys:
                if rng.random() > 0.35:
                    continue
                spec = self._specs[key]
                bars = history.day(spec, day)
                if not len(bars):  # no session that day
                    continue
                minute = int(rng.integers(0, len(bars)))
                price = spec.price(int(bars.close[minute]))
                lots = int(rng.integers(1, 6))
                side = self._side(account, key, lots, float(rng.random()))
                t = bars.time[minute] + float(rng.integers(0, 60))
                drawn.append((t, spec, side, price, lots))
            # a side depends only on its own instrument, so the day's trades can be numbered
            # in time order, as an exchange numbers them
            for t, spec, side, price, lots in sorted(drawn, key=lambda trade: trade[0]):
                number += 1
                trade_id = str((day * 10_000 + number) * 10 + 7)
                record = self._apply_trade(account, spec, side, price, lots, float(t), trade_id,
                                           order_no=str(int(t) * 10 + 3))
                record["existing"] = True
                account.history.append(record)
        account.commission = 0.0
        account.fee = 0.0
        for key, holding in account.holdings.items():
            account.opening[key] = Holding(holding.units, holding.avg_price)
        for currency, amount in account.money.items():
            account.opening[currency] = Holding(amount, 1.0)

    def _units_held(self, account: Account, key: tuple[str, str]) -> float:
        spec = self._specs[key]
        if account.kind == "fx":
            return account.money.get(spec.underlying or "", 0.0)
        holding = account.holdings.get(key)
        return holding.units if holding else 0.0

    def _side(self, account: Account, key: tuple[str, str], lots: int, u: float) -> int:
        """Buy or sell, leaning back toward the target holding; never sell what is not held."""
        held = self._units_held(account, key)
        target = max(account.target.get(key, 1.0), 1.0)
        side = BUY if u < 0.5 - 0.4 * math.tanh((held - target) / target) else SELL
        if side == SELL and held < lots * self._specs[key].lot_size:
            side = BUY
        return side

    def _opening_moves(self) -> None:
        """At the start every portfolio gets one filled, one canceled and one working order,
        so every status is visible at once."""
        t = self.market.start
        for account in self.accounts.values():
            key = account.keys[0]
            flow = self.market.flow(key)
            bid, ask = flow.book.best(BUY), flow.book.best(SELL)
            if not flow.trading or bid is None or ask is None:
                continue
            self._place(account, key, BUY, ask + 2, 1, t)
            order_id = self._place(account, key, BUY, bid - 3, 1, t)
            self._cancel(account, order_id, t)
            self._place(account, key, BUY, bid - 2, 2, t)
            self._new_stop(account, key, t)

    def _new_session(self, t: float) -> None:
        """A new UTC day: day orders expire, today's trades become history, the opening state
        is the state now; on FORTS the clearing books the variation margin and the fee."""
        self._session_day = int(t // DAY)
        for account in self.accounts.values():
            for order_id, order in list(account.orders.items()):
                if order["status"] == "working":
                    self._cancel(account, order_id, t)
            for stop in account.stop_orders.values():
                if stop["status"] == "working":
                    stop.update(status="canceled", update_time=_iso(t), error="session ended")
                    self._log(account, "stop_order", stop)
            account.orders.clear()
            account.stop_orders.clear()
            account.history.extend(dict(trade, existing=True) for trade in account.trades)
            del account.history[:-HISTORY_KEEP]
            account.trades = []
            if account.kind == "forts":
                for key, holding in account.holdings.items():
                    price = self._price(key)
                    account.money["RUB"] += holding.units * (price - holding.avg_price)
                    holding.avg_price = price if holding.units else 0.0
                account.money["RUB"] -= account.fee
            account.commission = account.fee = 0.0
            account.opening = {key: Holding(h.units, h.avg_price)
                               for key, h in account.holdings.items()}
            account.opening.update({c: Holding(a, 1.0) for c, a in account.money.items()})
            self._log_values(account, t)

    # --- the trader's stream ------------------------------------------------------------------

    def step(self, t: float) -> float:
        if int(t // DAY) != self._session_day:
            self._new_session(t)
        if t >= self._next_revalue:
            self._revalue(t)
            self._next_revalue = t + self._revalue_every
        else:
            self._act(t)
        wait = -math.log(1.0 - self._u()) * self._trader_every
        self.next_time = min(t + wait, self._next_revalue)
        return self.next_time

    def skip_to(self, t: float) -> None:
        if self.next_time < t:
            self.next_time = t
            self._next_revalue = t

    def _act(self, t: float) -> None:
        account = self.accounts[self._pick(list(self.ids))]
        key = self._pick(account.keys)
        flow = self.market.flow(key)
        bid, ask = flow.book.best(BUY), flow.book.best(SELL)
        if not flow.trading or bid is None or ask is None:
            return
        choice = self._u()
        working = [o for o in account.orders.values() if o["status"] == "working"]
        if choice < 0.25 and working:
            self._cancel(account, self._pick(working)["id"], t)
            return
        if choice < 0.32:
            stops = [s for s in account.stop_orders.values() if s["status"] == "working"]
            if stops and self._u() < 0.5:
                self._cancel_stop(account, self._pick(stops), t)
            else:
                self._new_stop(account, key, t)
            return
        lots = 1 + int(self._u() * 4)
        side = self._side(account, key, lots, self._u())
        aggressive = choice > 0.75
        if side == BUY:
            price = ask + 1 if aggressive else bid - int(self._u() * 4)
        else:
            price = bid - 1 if aggressive else ask + int(self._u() * 4)
        self._place(account, key, side, max(price, 1), lots, t)

    # --- orders and fills -----------------------------------------------------------------------

    def _next_id(self) -> str:
        self._order_no += 1
        return str(self._order_no)

    def _place(self, account: Account, key: tuple[str, str], side: int, price: int, lots: int,
               t: float) -> str:
        spec = self._specs[key]
        order_id = self._next_id()
        units = lots * spec.lot_size
        record = {
            "id": order_id, "portfolio": account.id, "symbol": spec.symbol,
            "exchange": spec.exchange, "board": spec.board,
            "broker_symbol": f"{spec.exchange}:{spec.symbol}", "type": "limit",
            "side": "buy" if side == BUY else "sell", "status": "working",
            "price": spec.price(price), "qty_units": units, "qty_batch": lots,
            "filled_qty_units": 0.0, "filled_qty_batch": 0.0,
            "volume": round(spec.unit_value(spec.price(price)) * units, 4),
            "time_in_force": "oneday",
            "trans_time": _iso(t), "update_time": _iso(t),
            "end_time": _iso(math.floor(t / DAY) * DAY + DAY - 0.001),
            "comment": "demo", "iceberg": None, "existing": False, "qty": lots, "filled": 0.0,
        }
        account.orders[order_id] = record
        self._log(account, "order", record)
        flow = self.market.flow(key)
        fills, _ = flow.place(account.id, int(order_id), side, price, lots, t)
        first_id = flow.first_trade_id + flow.trade_count - len(fills)
        for number, (fill_price, qty, _resting) in enumerate(fills):
            self._fill(account, spec, record, side, fill_price, qty, t, first_id + number)
        return order_id

    def _cancel(self, account: Account, order_id: str, t: float) -> None:
        record = account.orders.get(order_id)
        if record is None or record["status"] != "working":
            return
        key = (record["exchange"], record["symbol"])
        self.market.flow(key).cancel(int(order_id), t)
        record.update(status="canceled", update_time=_iso(t))
        self._log(account, "order", record)

    def on_fill(self, owner: str, order_id: int, price: int, qty: int, t: float,
                trade_id: int) -> None:
        """A resting order of the trader met a marketable order of the crowd."""
        account = self.accounts[owner]
        record = account.orders.get(str(order_id))
        if record is None:
            return
        spec = self._specs[(record["exchange"], record["symbol"])]
        side = BUY if record["side"] == "buy" else SELL
        self._fill(account, spec, record, side, price, qty, t, trade_id)

    def _fill(self, account: Account, spec: Spec, order: dict, side: int, price_ticks: int,
              lots: int, t: float, trade_id: int) -> None:
        price = spec.price(price_ticks)
        trade = self._apply_trade(account, spec, side, price, lots, t, str(trade_id),
                                  order_no=order["id"])
        account.trades.append(trade)
        order["filled_qty_batch"] += lots
        order["filled_qty_units"] += lots * spec.lot_size
        order["filled"] = order["filled_qty_batch"]
        order["update_time"] = _iso(t)
        if order["filled_qty_batch"] >= order["qty_batch"]:
            order["status"] = "filled"
        self._log(account, "own_trade", trade)
        self._log(account, "order", order)
        self._log_values(account, t, force_keys=[spec.key])

    def _apply_trade(self, account: Account, spec: Spec, side: int, price: float, lots: int,
                     t: float, trade_id: str, order_no: str) -> dict:
        units = lots * spec.lot_size
        volume = spec.unit_value(price) * units
        accrued = self.market.accrued_interest(spec.key, t) * units  # a bond's buyer pays it
        charged = round(volume * COMMISSION[account.id if account.id in COMMISSION
                                            else STOCK], 2)
        commission: float | None = charged
        if account.kind == "fx":
            currency = spec.underlying or "USD"
            account.money[currency] = account.money.get(currency, 0.0) + side * units
            account.money["RUB"] -= side * volume + charged
            account.commission += charged
        elif account.kind == "forts":
            account.holdings.setdefault(spec.key, Holding()).apply(side * units, price)
            account.fee += FORTS_FEE * lots
            commission = None
        else:
            account.holdings.setdefault(spec.key, Holding()).apply(side * units, price)
            account.money["RUB"] -= side * (volume + accrued) + charged
            account.commission += charged
        return {
            "id": trade_id, "order_no": order_no, "symbol": spec.symbol,
            "short_name": spec.short_name, "exchange": spec.exchange, "board": spec.board,
            "broker_symbol": f"{spec.exchange}:{spec.symbol}",
            "side": "buy" if side == BUY else "sell", "price": price, "qty_units": units,
            "qty_batch": lots, "qty": lots, "volume": round(volume, 4),
            "accrued_interest": round(accrued, 2),
            "commission": commission, "currency": spec.currency, "date": _iso(t),
            "settle_date": _iso(math.floor(t / DAY) * DAY + DAY), "comment": "demo",
            "repo_specific_fields": None, "existing": False,
        }

    # --- stop orders ---------------------------------------------------------------------------------

    def _new_stop(self, account: Account, key: tuple[str, str], t: float) -> None:
        spec = self._specs[key]
        last = self.market.last_price(key)
        held = self._units_held(account, key) > 0
        side = "sell" if held else "buy"
        factor = 0.97 if side == "sell" else 1.03
        stop = spec.price(round(last * factor / spec.min_step))
        lots = 1
        stop_id = self._next_id()
        record = {
            "id": stop_id, "exchange_order_id": None, "portfolio": account.id,
            "symbol": spec.symbol, "exchange": spec.exchange, "board": spec.board,
            "broker_symbol": f"{spec.exchange}:{spec.symbol}", "type": "stop", "side": side,
            "condition": "LessOrEqual" if side == "sell" else "MoreOrEqual",
            "status": "working", "stop_price": stop, "price": 0.0, "avg_price": 0.0,
            "qty_units": float(lots * spec.lot_size), "qty_batch": lots,
            "filled_qty_units": 0.0, "filled_qty_batch": 0.0,
            "volume": round(spec.unit_value(stop) * lots * spec.lot_size, 4),
            "time_in_force": "oneday",
            "protecting_seconds": 15, "trans_time": _iso(t), "update_time": _iso(t),
            "end_time": _iso(math.floor(t / DAY) * DAY + DAY - 0.001), "error": None,
            "comment": "demo stop", "iceberg": None, "existing": False, "qty": lots,
            "filled": 0.0,
        }
        account.stop_orders[stop_id] = record
        self._log(account, "stop_order", record)

    def _cancel_stop(self, account: Account, record: dict, t: float) -> None:
        record.update(status="canceled", update_time=_iso(t), error="canceled by user")
        self._log(account, "stop_order", record)

    def _trigger_stops(self, account: Account, t: float) -> None:
        for record in list(account.stop_orders.values()):
            if record["status"] != "working":
                continue
            key = (record["exchange"], record["symbol"])
            last = self.market.last_price(key)
            below = record["condition"] == "LessOrEqual"
            if (last <= record["stop_price"]) if below else (last >= record["stop_price"]):
                spec = self._specs[key]
                flow = self.market.flow(key)
                side = SELL if record["side"] == "sell" else BUY
                if not flow.trading or not flow.book.depth(-side):
                    continue
                far = flow.book.price_at(-side, min(10, flow.book.depth(-side) - 1))
                order_id = self._place(account, key, side, far, record["qty_batch"], t)
                order = account.orders[order_id]
                if order["status"] == "working":
                    self._cancel(account, order_id, t)
                filled = order["filled_qty_batch"]
                record.update(status="filled", exchange_order_id=order_id, update_time=_iso(t),
                              filled_qty_batch=filled, filled_qty_units=order["filled_qty_units"],
                              filled=filled, price=spec.price(far),
                              avg_price=self._avg_fill(account, order_id))
                self._log(account, "stop_order", record)

    @staticmethod
    def _avg_fill(account: Account, order_id: str) -> float:
        fills = [tr for tr in account.trades if tr["order_no"] == order_id]
        units = sum(tr["qty_units"] for tr in fills)
        return sum(tr["price"] * tr["qty_units"] for tr in fills) / units if units else 0.0

    # --- revaluation and the change log -----------------------------------------------------------

    def _revalue(self, t: float) -> None:
        for account in self.accounts.values():
            self._trigger_stops(account, t)
            self._log_values(account, t)

    def _log_values(self, account: Account, t: float, force_keys: list | None = None) -> None:
        """Log positions, summary and risks whose values changed since they were last logged."""
        for record in self.positions(account.id):
            name = (record["symbol"], "position")
            if account.last_values.get(name) != record:
                account.last_values[name] = record
                self._log(account, "position", record)
        kinds = [("summary", self.summary), ("risk", self.risk)]
        if account.kind == "forts":
            kinds.append(("forts_risk", self.forts_risk))
        for kind, build in kinds:
            record = build(account.id)
            compare = {k: v for k, v in record.items() if k != "calculation_time"}
            if account.last_values.get(("", kind)) != compare:
                account.last_values[("", kind)] = compare
                self._log(account, kind, record)

    def _log(self, account: Account, kind: str, record: dict) -> None:
        account.seq += 1
        account.log.append((account.seq, kind, dict(record)))

    # --- the public records ----------------------------------------------------------------------------

    def account(self, portfolio: str) -> Account:
        try:
            return self.accounts[portfolio]
        except KeyError:
            raise KeyError(f"unknown portfolio {portfolio!r}") from None

    def seq(self, portfolio: str) -> int:
        return self.account(portfolio).seq

    def changes(self, portfolio: str, after_seq: int) -> list[tuple[int, str, dict]]:
        log = self.account(portfolio).log
        out = []
        for item in reversed(log):
            if item[0] <= after_seq:
                break
            out.append(item)
        out.reverse()
        return out

    def _price(self, key: tuple[str, str]) -> float:
        return self.market.last_price(key)

    def _prev_close(self, key: tuple[str, str]) -> float:
        spec = self._specs[key]
        return spec.price(self.market.prev_close_ticks(key))

    def positions(self, portfolio: str) -> list[dict]:
        account = self.account(portfolio)
        out = [self._money_position(account, currency) for currency in account.money]
        for key, holding in account.holdings.items():
            out.append(self._position(account, key, holding))
        return out

    def _position(self, account: Account, key: tuple[str, str], holding: Holding) -> dict:
        spec = self._specs[key]
        last = self._price(key)
        prev = self._prev_close(key)
        opening = account.opening.get(key, Holding())
        units = float(holding.units)
        lots = units / spec.lot_size
        open_lots = opening.units / spec.lot_size
        volume = units * spec.unit_value(holding.avg_price)
        current = units * spec.unit_value(last)
        return {
            "portfolio": account.id, "symbol": spec.symbol, "exchange": spec.exchange,
            "broker_symbol": f"{spec.exchange}:{spec.symbol}", "short_name": spec.short_name,
            "is_currency": False, "lot_size": float(spec.lot_size), "qty_units": units,
            "open_units": float(opening.units), "avg_price": round(holding.avg_price, 6),
            "volume": round(volume, 4), "current_volume": round(current, 4),
            "daily_unrealised_pl": round(units * spec.unit_value(last - prev), 4),
            "unrealised_pl": round(current - volume, 4),
            "qty_t0": units, "qty_t1": units, "qty_t2": units, "qty_t_future": units,
            "qty_t0_batch": lots, "qty_t1_batch": lots, "qty_t2_batch": lots,
            "qty_t_future_batch": lots, "open_qty_batch": open_lots, "existing": True,
            "qty_batch": lots, "qty": lots, "open": open_lots,
        }

    def _money_position(self, account: Account, currency: str) -> dict:
        amount = round(account.money[currency], 2)
        opening = round(account.opening.get(currency, Holding()).units, 2)
        rate = self._rate(currency)
        return {
            "portfolio": account.id, "symbol": currency, "exchange": "MOEX",
            "broker_symbol": f"MOEX:{currency}", "short_name": currency, "is_currency": True,
            "lot_size": 0.0, "qty_units": round(amount, 2), "open_units": round(opening, 2),
            "avg_price": 1.0 if currency == "RUB" else rate,
            "volume": round(amount * (1.0 if currency == "RUB" else rate), 2),
            "current_volume": round(amount * rate, 2), "daily_unrealised_pl": 0.0,
            "unrealised_pl": 0.0, "qty_t0": amount, "qty_t1": amount, "qty_t2": amount,
            "qty_t_future": amount, "qty_t0_batch": amount, "qty_t1_batch": amount,
            "qty_t2_batch": amount, "qty_t_future_batch": amount, "open_qty_batch": opening,
            "existing": True, "qty_batch": amount, "qty": amount, "open": opening,
        }

    def _rate(self, currency: str) -> float:
        """RUB per unit of ``currency`` from the FX book."""
        if currency == "RUB":
            return 1.0
        for key, spec in self._specs.items():
            if spec.market == "CURR" and spec.underlying == currency:
                return self._price(key)
        return 1.0

    def _valuation(self, account: Account, morning: bool = False) -> tuple[float, float]:
        """(portfolio value in RUB, initial margin) at current prices (or at the previous close
        with opening holdings when ``morning``)."""
        rates = {r["instrument"]: r for r in risk_rate_records(RISK_CATEGORY)}
        value, margin = 0.0, 0.0
        money = ({c: h.units for c, h in account.opening.items() if isinstance(c, str)}
                 if morning else account.money)
        for currency, amount in money.items():
            fx = self._rate(currency)
            value += amount * fx
            if currency != "RUB":
                margin += abs(amount * fx) * 0.09
        holdings = ({k: h for k, h in account.opening.items() if not isinstance(k, str)}
                    if morning else account.holdings)
        for key, holding in holdings.items():
            spec = self._specs[key]
            price = self._prev_close(key) if morning else self._price(key)
            exposure = holding.units * spec.unit_value(price)
            rate = rates[spec.symbol]
            if account.kind == "forts":
                value += holding.units * (price - holding.avg_price)
                margin += abs(exposure) * 0.14
            else:
                value += exposure
                down = rate["rate_down"] if holding.units >= 0 else rate["rate_up"]
                margin += abs(exposure) * down / 100
        if account.kind == "forts":
            value -= 0.0 if morning else account.fee
        return value, margin

    def summary(self, portfolio: str) -> dict:
        account = self.account(portfolio)
        value, margin = self._valuation(account)
        morning_value, morning_margin = self._valuation(account, morning=True)
        profit = value - morning_value
        buying_power = value - margin
        return {
            "buying_power_at_morning": round(morning_value - morning_margin, 2),
            "buying_power": round(buying_power, 2), "profit": round(profit, 2),
            "profit_rate": round(profit / morning_value * 100, 4) if morning_value else 0.0,
            "portfolio_evaluation": round(value, 2), "portfolio_liquidation_value": round(value, 2),
            "initial_margin": round(margin, 2), "corrected_margin": round(margin, 2),
            "risk_before_force_position_closing": round(value - margin / 2, 2),
            "commission": None if account.kind == "forts" else round(account.commission, 2),
            "buying_power_by_currency": [{"currency": "RUB", "buying_power": round(buying_power,
                                                                                    2)}],
        }

    def risk(self, portfolio: str) -> dict:
        account = self.account(portfolio)
        value, margin = self._valuation(account)
        minimal = margin / 2
        r1, r2 = value - margin, value - minimal
        status = "Ok" if r1 >= 0 and r2 >= 0 else ("Demand" if r2 >= 0 else "ToClose")
        return {
            "portfolio": account.id, "exchange": "MOEX", "portfolio_evaluation": round(value, 2),
            "portfolio_liquidation_value": round(value, 2), "initial_margin": round(margin, 2),
            "minimal_margin": round(minimal, 2), "corrected_margin": round(margin, 2),
            "risk_coverage_ratio_one": round(r1, 2), "risk_coverage_ratio_two": round(r2, 2),
            "risk_category_id": RISK_CATEGORY, "client_type": "StandardRisk",
            "has_forbidden_positions": False,
            "has_negative_quantity": any(h.units < 0 for h in account.holdings.values())
            or any(v < 0 for v in account.money.values()),
            "risk_status": status, "calculation_time": _iso(self.market.now()),
        }

    def forts_risk(self, portfolio: str) -> dict:
        account = self.account(portfolio)
        if account.kind != "forts":
            raise KeyError(f"{portfolio!r} is not a derivatives (FORTS) portfolio")
        money_old = account.opening["RUB"].units
        variation = 0.0
        blocked = 0.0
        for key, holding in account.holdings.items():
            price = self._price(key)
            variation += holding.units * (price - holding.avg_price)
            blocked += abs(holding.units * price) * 0.14
        amount = money_old + variation - account.fee
        return {
            "portfolio": account.id, "money_free": round(amount - blocked, 2),
            "money_blocked": round(blocked, 2), "fee": round(account.fee, 2),
            "money_old": round(money_old, 2), "money_amount": round(amount, 2),
            "money_pledge_amount": 0.0, "vm_inter_cl": 0.0,
            "vm_current_positions": round(variation, 2), "var_margin": round(variation, 2),
            "indicative_var_margin": round(variation, 2), "net_option_value": 0.0,
            "pos_risk": round(blocked, 2), "is_limits_set": False, "balance_money": 0.0,
        }

    def money(self, portfolio: str) -> dict:
        account = self.account(portfolio)
        summary = self.summary(portfolio)
        cash = account.money.get("RUB", 0.0)
        opening = account.opening["RUB"].units
        return {
            "portfolio": account.id, "cash": round(cash, 2),
            "used": summary["initial_margin"], "open": round(opening, 2),
            "free": summary["buying_power"], "profit": summary["profit"],
            "profit_rate": summary["profit_rate"], "commission": round(account.commission, 2),
            "changes": round(cash - opening, 2),
        }

    def orders(self, portfolio: str) -> list[dict]:
        return [dict(o, existing=True) for o in self.account(portfolio).orders.values()]

    def stop_orders(self, portfolio: str) -> list[dict]:
        return [dict(o, existing=True) for o in self.account(portfolio).stop_orders.values()]

    def own_trades(self, portfolio: str, symbol: str | None = None) -> list[dict]:
        trades = self.account(portfolio).trades
        if symbol:
            trades = [t for t in trades if t["symbol"].upper() == symbol.upper()]
        return [dict(t, existing=True) for t in trades]

    def own_trades_history(self, portfolio: str, symbol: str | None = None,
                           date_from: float | str | None = None) -> list[dict]:
        trades = self.account(portfolio).history
        if symbol:
            trades = [t for t in trades if t["symbol"].upper() == symbol.upper()]
        if date_from is not None:
            since = _iso(float(date_from)) if not isinstance(date_from, str) else date_from
            trades = [t for t in trades if t["date"] >= since]
        return [dict(t) for t in trades]


_iso = iso
