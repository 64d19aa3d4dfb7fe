"""One table per data kind: wire names in Simple / Slim / Heavy <-> canonical column names.

The same tables serve the client (decode a payload into a fixed-schema DataFrame) and the
simulator (encode a canonical record into the requested format), so both sides always agree.

A table row reads ``canonical  simple  slim  heavy  kind  [flags]``:

* ``-`` means the field does not exist in that format; ``a|b`` means emit ``a``, accept ``a``
  or ``b`` when decoding (the API's known spelling conflicts).
* ``kind`` is the value type and decides the DataFrame dtype: ``str``, ``lower`` (a string
  read in lower case: an enum the API spells in several cases), ``float``, ``int``
  (nullable Int64), ``i8`` (int64, never null), ``bool``, ``ts_s`` / ``ts_ms`` (unix seconds /
  milliseconds -> UTC datetime), ``iso`` (ISO-8601 string -> UTC datetime), ``obj:KIND``
  (a nested object, or a list of them, of another table).
* flag ``legacy``: a field that is encoded and decoded but is not a DataFrame column: a
  deprecated field that only Simple still sends (its backward compatibility), or the trade's ISO
  ``time`` (Simple and Heavy), which repeats ``timestamp`` and which Slim lacks.

Canonical names spell words out even where the wire does not (``comission`` -> ``commission``,
``marginSyntetic`` -> ``margin_synthetic``), and one wire field has one name in every table
(``accruedInt`` -> ``accrued_interest``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgument

FORMATS = ("Simple", "Slim", "Heavy")
_FORMAT_BY_LOWER = {f.lower(): f for f in FORMATS}
_FMT_INDEX = {"Simple": 0, "Slim": 1, "Heavy": 2}


def normalize_format(fmt: str | None) -> str:
    """``"slim"`` -> ``"Slim"``; ``None`` -> ``"Simple"``. Raises InvalidArgument otherwise."""
    if fmt is None:
        return "Simple"
    if isinstance(fmt, str):
        found = _FORMAT_BY_LOWER.get(fmt.lower())
        if found:
            return found
    raise InvalidArgument(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")


@dataclass(frozen=True)
class Field:
    name: str
    wire: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # accepted keys per format
    kind: str
    legacy: bool = False

    def key(self, fmt: str) -> str | None:
        """The key emitted in ``fmt`` (None when the field is absent there)."""
        keys = self.wire[_FMT_INDEX[fmt]]
        return keys[0] if keys else None

    def keys(self, fmt: str) -> tuple[str, ...]:
        return self.wire[_FMT_INDEX[fmt]]

    @property
    def sub(self) -> str | None:
        return self.kind[4:] if self.kind.startswith("obj:") else None


class Schema:
    """The fields of one data kind and the (de)coding between wire and canonical names."""

    def __init__(self, name: str, table: str) -> None:
        self.name = name
        fields = []
        for line in table.strip().splitlines():
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            canonical, simple, slim, heavy, kind, *flags = parts
            wire = tuple(() if w == "-" else tuple(w.split("|")) for w in (simple, slim, heavy))
            fields.append(Field(canonical, wire, kind, legacy="legacy" in flags))  # type: ignore[arg-type]
        self.fields: tuple[Field, ...] = tuple(fields)
        self.by_name = {f.name: f for f in self.fields}
        self.columns: tuple[str, ...] = tuple(f.name for f in self.fields if not f.legacy)
        self._encode_plan = {
            fmt: tuple((f.name, key, f.sub) for f in self.fields if (key := f.key(fmt)))
            for fmt in FORMATS
        }
        self._decode_plan = {
            fmt: tuple((f.name, f.keys(fmt), f.sub) for f in self.fields if f.keys(fmt))
            for fmt in FORMATS
        }

    def __repr__(self) -> str:
        return f"Schema({self.name!r}, {len(self.fields)} fields)"

    def field(self, name: str) -> Field:
        return self.by_name[name]

    def key(self, name: str, fmt: str) -> str | None:
        """The wire key of canonical field ``name`` in ``fmt``."""
        return self.by_name[name].key(fmt)

    def required_key(self, name: str, fmt: str) -> str:
        """The wire key of ``name`` in ``fmt``, a field every format carries (KeyError if not)."""
        key = self.by_name[name].key(fmt)
        if key is None:
            raise KeyError(f"{self.name}.{name} has no wire key in {fmt}")
        return key

    def encode(self, record: Mapping[str, Any], fmt: str) -> dict[str, Any]:
        """Canonical record -> wire object in ``fmt``. Only keys present in ``record`` are emitted,
        so a partial record (an instrument-state change) encodes to a partial object."""
        out: dict[str, Any] = {}
        for name, key, sub in self._encode_plan[fmt]:
            if name in record:
                value = record[name]
                if sub is not None and value is not None:
                    value = _encode_nested(SCHEMAS[sub], value, fmt)
                out[key] = value
        return out

    def decode(self, obj: Mapping[str, Any], fmt: str) -> dict[str, Any]:
        """Wire object in ``fmt`` -> canonical record (only the fields present; unknown keys dropped)."""
        out: dict[str, Any] = {}
        for name, keys, sub in self._decode_plan[fmt]:
            for key in keys:
                if key in obj:
                    value = obj[key]
                    if sub is not None and value is not None:
                        value = _decode_nested(SCHEMAS[sub], value, fmt)
                    out[name] = value
                    break
        return out


def _encode_nested(schema: Schema, value: Any, fmt: str) -> Any:
    if isinstance(value, list):
        return [schema.encode(v, fmt) for v in value]
    return schema.encode(value, fmt)


def _decode_nested(schema: Schema, value: Any, fmt: str) -> Any:
    if isinstance(value, list):
        return [schema.decode(v, fmt) for v in value]
    return schema.decode(value, fmt)


# --- the tables (REFERENCE.md §3, §4.A) -------------------------------------------------------

SECURITY = Schema("security", """
symbol                      symbol                  sym     symbol                  str
short_name                  shortname               n       shortName               str
description                 description             desc    description             str
exchange                    exchange                ex      exchange                str
market                      market                  -       market                  str
board                       board                   bd      board                   str
primary_board               primary_board           pbd     primaryBoard            str
type                        type                    t       type                    str
lot_size                    lotsize                 lot     lotSize                 float
face_value                  facevalue               fv      faceValue               float
currency                    currency                cur     currency                str
nominal_currency            -                       -       nominalCurrency         str
settlement_currency         -                       -       settlementCurrency      str
underlying_currency         -                       -       underlyingCurrency      str
isin                        ISIN                    isin    ISIN                    str
cfi_code                    cfiCode                 cfi     cfiCode                 str
min_step                    minstep                 stp     minStep                 float
price_step                  pricestep               stppx   priceStep               float
round_to                    -                       -       roundTo                 int
price_max                   priceMax                pxmx    priceMax                float
price_min                   priceMin                pxmn    priceMin                float
rating                      rating                  rt      rating                  float
trading_status              tradingStatus           st      tradingStatus           int
trading_status_info         tradingStatusInfo       sti     tradingStatusInfo       str
cancellation                cancellation            cncl    cancellation            iso
margin_buy                  marginbuy               mgb     marginBuy               float
margin_sell                 marginsell              mgs     marginSell              float
margin_rate                 marginrate              mgrt    marginRate              float
theor_price                 theorPrice              pxt     theorPrice              float
theor_price_limit           theorPriceLimit         pxtl    theorPriceLimit         float
volatility                  volatility              vl      volatility              float
yield                       yield                   yld     yield                   float
complex_product_category    complexProductCategory  cpct    complexProductCategory  str
price_multiplier            priceMultiplier         pxmu    priceMultiplier         float
price_shown_units           priceShownUnits         pxu     priceShownUnits         float
strike_price                strikePrice             pxs     strikePrice             float
end_expiration              endExpiration           exp     endExpiration           iso
fixed_spot_discount         fixedSpotDiscount       fdis    fixedSpotDiscount       float
projected_spot_discount     projectedSpotDiscount   pdis    projectedSpotDiscount   float
underlying_symbol           underlyingSymbol        usym    underlyingSymbol        str
option_side                 optionSide              osd     optionSide              str
initial_margin_low_risk_long        -  -  initialMarginLowRiskLong        float
initial_margin_low_risk_short       -  -  initialMarginLowRiskShort       float
initial_margin_standard_risk_long   -  -  initialMarginStandardRiskLong   float
initial_margin_standard_risk_short  -  -  initialMarginStandardRiskShort  float
initial_margin_high_risk_long       -  -  initialMarginHighRiskLong       float
initial_margin_high_risk_short      -  -  initialMarginHighRiskShort      float
initial_margin_special_risk_long    -  -  initialMarginSpecialRiskLong    float
initial_margin_special_risk_short   -  -  initialMarginSpecialRiskShort   float
""")

QUOTE = Schema("quote", """
symbol                  symbol                  sym     symbol              str
exchange                exchange                ex      exchange            str
description             description             desc    description         str
last_price              last_price              c       lastPrice           float
last_price_time         last_price_timestamp    tst     lastPriceTimestamp  ts_s
bid                     bid                     bid     bid                 float
ask                     ask                     ask     ask                 float
bid_vol                 bid_vol                 bv      bidVol              int
ask_vol                 ask_vol                 av      askVol              int
total_bid_vol           total_bid_vol           tbv     totalBidVol         int
total_ask_vol           total_ask_vol           tav     totalAskVol         int
ob_time                 ob_ms_timestamp         tso     obMsTimestamp       ts_ms
open_price              open_price              o       openPrice           float
high_price              high_price              h       highPrice           float
low_price               low_price               l       lowPrice            float
prev_close_price        prev_close_price        -       prevClosePrice      float
change                  change                  -       change              float
change_percent          change_percent          -       changePercent       float
volume                  volume                  v       volume              float
open_interest           open_interest           oi      openInterest        int
accrued_interest        accruedInt              acci    accruedInterest     float
yield                   yield                   y       yield               float
lot_size                lotsize                 lot     lotSize             float
lot_value               lotvalue                lotv    lotValue            float
face_value              facevalue               fv      faceValue           float
type                    type                    t       type                str
currency                -                       -       currency            str
accrued_interest_legacy accrued_interest        -       -                   float   legacy
""")

CURRENCY_PAIR = Schema("currency_pair", """
first_code      firstCode   firstCode   firstCode   str
second_code     secondCode  secondCode  secondCode  str
symbol_tom      symbolTom   symbolTom   symbolTom   str
""")

BOOK_LEVEL = Schema("book_level", """
price       price   p   price   float
volume      volume  v   volume  int
yield       -       y   -       float
""")

ORDERBOOK = Schema("orderbook", """
bids            bids            b   bids            obj:book_level
asks            asks            a   asks            obj:book_level
time            ms_timestamp    t   msTimestamp     ts_ms
existing        existing        h   existing        bool
snapshot        snapshot        -   -               bool    legacy
timestamp_s     timestamp       -   -               float   legacy
""")

TRADE = Schema("trade", """
time        timestamp   t       timestamp   ts_ms
id          id          id      id          int
symbol      symbol      sym     symbol      str
board       board       bd      board       str
side        side        s       side        str
price       price       px      price       float
qty         qty         q       qty         int
oi          oi          oi      oi          int
existing    existing    h       existing    bool
time_iso    time        -       time        iso     legacy
order_no    orderno     -       -           str     legacy
""")

CANDLE = Schema("candle", """
time        time    t   time    ts_s
open        open    o   open    float
high        high    h   high    float
low         low     l   low     float
close       close   c   close   float
volume      volume  v   volume  i8
""")

# The envelope of /md/v2/history: the Slim list key is `h` on the wire (`history` accepted).
HISTORY = Schema("history", """
history     history     h|history   history     obj:candle
next        next        next        next        int
prev        prev        prev        prev        int
""")

RISK_RATE = Schema("risk_rate", """
id                          id                      id                      id                      int
instrument                  instrument              instrument              instrument              str
exchange                    exchange                exchange                exchange                str
risk_category_id            riskCategoryId          riskCategoryId          riskCategoryId          int
security_risk_category_id   securityRiskCategoryId  securityRiskCategoryId  securityRiskCategoryId  float
asset_type                  assetType               assetType               assetType               str
underlying_asset            underlyingAsset         underlyingAsset         underlyingAsset         str
set_name                    setName                 setName                 setName                 str
isin                        isin                    isin                    isin                    str
currency_code               currencyCode            currencyCode            currencyCode            str
rate_up                     rateUp                  rateUp                  rateUp                  float
rate_down                   rateDown                rateDown                rateDown                float
rate_symmetric              rateSymmetric           rateSymmetric           rateSymmetric           float
is_short_sell_possible      isShortSellPossible     isShortSellPossible     isShortSellPossible     bool
is_marginal                 isMarginal              isMarginal              isMarginal              bool
set_rate                    setRate                 setRate                 setRate                 float
sgn_r                       sgnR                    sgnR                    sgnR                    int
""")

BUYING_POWER = Schema("buying_power", """
currency        currency    cr  currency    str
buying_power    buyingPower bp  buyingPower float
""")

SUMMARY = Schema("summary", """
buying_power_at_morning             buyingPowerAtMorning            bpm     buyingPowerAtMorning            float
buying_power                        buyingPower                     bp      buyingPower                     float
profit                              profit                          p       profit                          float
profit_rate                         profitRate                      pr      profitRate                      float
portfolio_evaluation                portfolioEvaluation             pe      portfolioEvaluation             float
portfolio_liquidation_value         portfolioLiquidationValue       plv     portfolioLiquidationValue       float
initial_margin                      initialMargin                   im      initialMargin                   float
corrected_margin                    correctedMargin                 mgc     correctedMargin                 float
risk_before_force_position_closing  riskBeforeForcePositionClosing  r       riskBeforeForcePositionClosing  float
commission                          commission                      cms     commission                      float
buying_power_by_currency            buyingPowerByCurrency           bpv2|bp2v   buyingPowerByCurrency       obj:buying_power
""")

POSITION = Schema("position", """
portfolio               portfolio           p       portfolio           str
symbol                  symbol              sym     symbol              str
exchange                exchange            ex      exchange            str
broker_symbol           brokerSymbol        tic     brokerSymbol        str
short_name              shortName           n       shortName           str
is_currency             isCurrency          cur     isCurrency          bool
lot_size                lotSize             lot     lotSize             float
qty_units               qtyUnits            q       qtyUnits            float
open_units              openUnits           o       openUnits           float
avg_price               avgPrice            pxavg   avgPrice            float
volume                  volume              v       volume              float
current_volume          currentVolume       cv      currentVolume       float
daily_unrealised_pl     dailyUnrealisedPl   upd     dailyUnrealisedPl   float
unrealised_pl           unrealisedPl        up      unrealisedPl        float
qty_t0                  qtyT0               q0      qtyT0               float
qty_t1                  qtyT1               q1      qtyT1               float
qty_t2                  qtyT2               q2      qtyT2               float
qty_t_future            qtyTFuture          qf      qtyTFuture          float
qty_t0_batch            qtyT0Batch          -       qtyT0Batch          float
qty_t1_batch            qtyT1Batch          -       qtyT1Batch          float
qty_t2_batch            qtyT2Batch          -       qtyT2Batch          float
qty_t_future_batch      qtyTFutureBatch     -       qtyTFutureBatch     float
open_qty_batch          openQtyBatch        -       openQtyBatch        float
existing                existing            h       existing            bool
qty_batch               qtyBatch            -       -                   float   legacy
qty                     qty                 -       -                   float   legacy
open                    open                -       -                   float   legacy
""")

RISK = Schema("risk", """
portfolio                   portfolio                   p       portfolio                   str
exchange                    exchange                    ex      exchange                    str
portfolio_evaluation        portfolioEvaluation         pe      portfolioEvaluation         float
portfolio_liquidation_value portfolioLiquidationValue   plv     portfolioLiquidationValue   float
initial_margin              initialMargin               mgi     initialMargin               float
minimal_margin              minimalMargin               mgmn    minimalMargin               float
corrected_margin            correctedMargin             mgc     correctedMargin             float
risk_coverage_ratio_one     riskCoverageRatioOne        r1      riskCoverageRatioOne        float
risk_coverage_ratio_two     riskCoverageRatioTwo        r2      riskCoverageRatioTwo        float
risk_category_id            riskCategoryId              rid     riskCategoryId              int
client_type                 clientType                  ct      clientType                  str
has_forbidden_positions     hasForbiddenPositions       fpos    hasForbiddenPositions       bool
has_negative_quantity       hasNegativeQuantity         nq      hasNegativeQuantity         bool
risk_status                 riskStatus                  rst     riskStatus                  str
calculation_time            calculationTime             t       calculationTime             iso
""")

FORTS_RISK = Schema("forts_risk", """
portfolio               portfolio           p       portfolio           str
money_free              moneyFree           f       moneyFree           float
money_blocked           moneyBlocked        b       moneyBlocked        float
fee                     fee                 fee     fee                 float
money_old               moneyOld            o       moneyOld            float
money_amount            moneyAmount         a       moneyAmount         float
money_pledge_amount     moneyPledgeAmount   pa      moneyPledgeAmount   float
vm_inter_cl             vmInterCl           mgc     vmInterCl           float
vm_current_positions    vmCurrentPositions  mgp     vmCurrentPositions  float
var_margin              varMargin           -       varMargin           float
indicative_var_margin   indicativeVarMargin ivm     indicativeVarMargin float
net_option_value        netOptionValue      nov     netOptionValue      float
pos_risk                posRisk             pr      posRisk             float
is_limits_set           isLimitsSet         lim     isLimitsSet         bool
balance_money           balanceMoney        -       -                   float   legacy
""")

MONEY = Schema("money", """
portfolio   portfolio   p   portfolio   str
cash        cash        c   cash        float
used        used        u   used        float
open        open        o   open        float
free        free        f   free        float
profit      profit      pf  profit      float
profit_rate profitRate  pfr profitRate  float
commission  comission   cms comission   float
changes     changes     ch  changes     float
""")

ICEBERG = Schema("iceberg", """
creation_fixed_quantity         creationFixedQuantity       cf  creationFixedQuantity       int
creation_variance_quantity      creationVarianceQuantity    cv  creationVarianceQuantity    int
visible_quantity                visibleQuantity             v   visibleQuantity             int
visible_quantity_batch          visibleQuantityBatch        vb  visibleQuantityBatch        int
visible_filled_quantity         visibleFilledQuantity       vf  visibleFilledQuantity       int
visible_filled_quantity_batch   visibleFilledQuantityBatch  vfb visibleFilledQuantityBatch  int
""")

ORDER = Schema("order", """
id                  id              id      id              str
portfolio           portfolio       p       portfolio       str
symbol              symbol          sym     symbol          str
exchange            exchange        ex      exchange        str
board               board           bd      board           str
broker_symbol       brokerSymbol    tic     brokerSymbol    str
type                type            t       type            str
side                side            s       side            str
status              status          st      status          str
price               price           px      price           float
qty_units           qtyUnits        q       qtyUnits        int
qty_batch           qtyBatch        qb      qtyBatch        int
filled_qty_units    filledQtyUnits  fq      filledQtyUnits  float
filled_qty_batch    filledQtyBatch  fqb     filledQtyBatch  float
volume              volume          v       volume          float
time_in_force       timeInForce     tf      timeInForce     str
trans_time          transTime       tt      transTime       iso
update_time         updateTime      ut      updateTime      iso
end_time            endTime         et      endTime         iso
comment             comment         cmt     comment         str
iceberg             iceberg         i       iceberg         obj:iceberg
existing            existing        h       existing        bool
qty                 qty             -       -               int     legacy
filled              filled          -       -               float   legacy
""")

STOP_ORDER = Schema("stop_order", """
id                  id              id      id              str
exchange_order_id   exchangeOrderId eid     exchangeOrderId str
portfolio           portfolio       p       portfolio       str
symbol              symbol          sym     symbol          str
exchange            exchange        ex      exchange        str
board               board           bd      board           str
broker_symbol       brokerSymbol    tic     brokerSymbol    str
type                type            t       type            str
side                side            s       side            str
condition           condition       cnd     condition       lower
status              status          st      status          str
stop_price          stopPrice       pxs     stopPrice       float
price               price           px      price           float
avg_price           avg_price       pxavg   avgPrice        float
qty_units           qtyUnits        q       qtyUnits        float
qty_batch           qtyBatch        qb      qtyBatch        int
filled_qty_units    filledQtyUnits  fq      filledQtyUnits  float
filled_qty_batch    filledQtyBatch  fqb     filledQtyBatch  float
volume              volume          v       volume          float
time_in_force       timeInForce     tf      timeInForce     str
protecting_seconds  protectingSeconds psec  protectingSeconds int
trans_time          transTime       tt      transTime       iso
update_time         updateTime      ut      updateTime      iso
end_time            endTime         et      endTime         iso
error               error           err     error           str
comment             comment         cmt     comment         str
iceberg             iceberg         i       iceberg         obj:iceberg
existing            existing        h       existing        bool
qty                 qty             -       -               int     legacy
filled              filled          -       -               float   legacy
""")

REPO = Schema("repo", """
repo_rate           repoRate        r   repoRate        float
ext_ref             extRef          exr extRef          str
repo_term           repoTerm        tm  repoTerm        int
account             account         a   account         str
trade_type_info     tradeTypeInfo   t   tradeTypeInfo   str
value               value           v   value           float
yield               yield           y   yield           float
""")

OWN_TRADE = Schema("own_trade", """
id                      id                  id      id                  str
order_no                orderno             eid     orderNo|orderno     str
symbol                  symbol              sym     symbol              str
short_name              -                   -       shortName           str
exchange                exchange            ex      exchange            str
board                   board               b       board               str
broker_symbol           brokerSymbol        tic     brokerSymbol        str
side                    side                s       side                str
price                   price               px      price               float
qty_units               qtyUnits            q       qtyUnits            int
qty_batch               qtyBatch            qb      qtyBatch            int
qty                     qty                 -       qty                 int
volume                  volume              v       volume              float
accrued_interest        accruedInt          ai      accruedInt          float
commission              commission          cms     commission          float
currency                -                   -       currency            str
date                    date                d       date                iso
settle_date             -                   -       settleDate          iso
comment                 comment             cmt     comment             str
repo_specific_fields    repoSpecificFields  r       repoSpecificFields  obj:repo
existing                existing            h       existing            bool
""")

INSTRUMENT_STATE = Schema("instrument_state", """
symbol              symbol              sym     symbol              str
exchange            exchange            ex      exchange            str
board               board               bd      board               str
trading_status      tradingStatus       st      tradingStatus       int
trading_status_info tradingStatusInfo   sti     tradingStatusInfo   str
price_min           priceMin            pxmn    priceMin            float
price_max           priceMax            pxmx    priceMax            float
margin_buy          marginBuy           mgb     marginBuy           float
margin_sell         marginSell          mgs     marginSell          float
margin_synthetic    marginSyntetic      mgsnt   marginSyntetic      float
theor_price         theorPrice          pxt     theorPrice          float
theor_price_limit   theorPriceLimit     pxtl    theorPriceLimit     float
volatility          volatility          vl      volatility          float
""")

# The deprecated session status of /md/status/{exchange}/{market}: the same keys in every format.
MARKET_STATUS = Schema("market_status", """
market      code    code    code    str
status      status  status  status  str
""")

SCHEMAS: dict[str, Schema] = {
    s.name: s
    for s in (
        SECURITY, QUOTE, CURRENCY_PAIR, BOOK_LEVEL, ORDERBOOK, TRADE, CANDLE, HISTORY, RISK_RATE,
        BUYING_POWER, SUMMARY, POSITION, RISK, FORTS_RISK, MONEY, ICEBERG, ORDER, STOP_ORDER,
        REPO, OWN_TRADE, INSTRUMENT_STATE, MARKET_STATUS,
    )
}
