"""schema.py against the API reference: every documented field has its wire keys and value type
in each format; every documented example decodes without losing a key, with values of the declared
kinds, and encodes back to itself; a full canonical record of every kind survives encode + decode
in every format.

The field tables and example objects are copied from /work/shared/api/REFERENCE.md (§3 tables
3.A-3.M, risk rates and currency pairs in §3.9/§3.5, table 4.A): they are facts of the API, not
results. The Heavy security example is cut off in REFERENCE; it is kept up to its last whole key.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from invia_data.frames import dtypes, to_frame
from invia_data.schema import FORMATS, SCHEMAS, Schema

# The field tables: Simple, Slim and Heavy key ("-": absent there; "a.b": key b of the object
# or objects under key a) and the documented type ("int" documented as a unix time -> unix_s /
# unix_ms; "deprecated" as REFERENCE marks it).
DOCUMENTED = {
    # Table 3.A
    "security": """
    symbol                  sym    symbol                          str
    shortname               n      shortName                       str
    description             desc   description                     str
    exchange                ex     exchange                        str
    market                  -      market                          str
    type                    t      type                            str
    lotsize                 lot    lotSize                         num
    facevalue               fv     faceValue                       num
    cfiCode                 cfi    cfiCode                         str
    cancellation            cncl   cancellation                    iso
    minstep                 stp    minStep                         num
    rating                  rt     rating                          num
    marginbuy               mgb    marginBuy                       num
    marginsell              mgs    marginSell                      num
    marginrate              mgrt   marginRate                      num
    pricestep               stppx  priceStep                       num
    priceMax                pxmx   priceMax                        num
    priceMin                pxmn   priceMin                        num
    theorPrice              pxt    theorPrice                      num
    theorPriceLimit         pxtl   theorPriceLimit                 num
    volatility              vl     volatility                      num
    currency                cur    currency                        str
    ISIN                    isin   ISIN                            str
    yield                   yld    yield                           num
    board                   bd     board                           str
    primary_board           pbd    primaryBoard                    str
    tradingStatus           st     tradingStatus                   int
    tradingStatusInfo       sti    tradingStatusInfo               str
    complexProductCategory  cpct   complexProductCategory          str
    priceMultiplier         pxmu   priceMultiplier                 num
    priceShownUnits         pxu    priceShownUnits                 num
    strikePrice             pxs    strikePrice                     num
    endExpiration           exp    endExpiration                   iso
    fixedSpotDiscount       fdis   fixedSpotDiscount               num
    projectedSpotDiscount   pdis   projectedSpotDiscount           num
    underlyingSymbol        usym   underlyingSymbol                str
    optionSide              osd    optionSide                      str
    -                       -      roundTo                         int
    -                       -      nominalCurrency                 str
    -                       -      settlementCurrency              str
    -                       -      underlyingCurrency              str
    -                       -      initialMarginLowRiskLong        num
    -                       -      initialMarginLowRiskShort       num
    -                       -      initialMarginStandardRiskLong   num
    -                       -      initialMarginStandardRiskShort  num
    -                       -      initialMarginHighRiskLong       num
    -                       -      initialMarginHighRiskShort      num
    -                       -      initialMarginSpecialRiskLong    num
    -                       -      initialMarginSpecialRiskShort   num
    """,
    # Table 3.B
    "quote": """
    symbol                sym   symbol              str
    exchange              ex    exchange            str
    description           desc  description         str
    prev_close_price      -     prevClosePrice      num
    last_price            c     lastPrice           num
    last_price_timestamp  tst   lastPriceTimestamp  unix_s
    high_price            h     highPrice           num
    low_price             l     lowPrice            num
    accruedInt            acci  accruedInterest     num
    volume                v     volume              num
    open_interest         oi    openInterest        int
    ask                   ask   ask                 num
    bid                   bid   bid                 num
    ask_vol               av    askVol              int
    bid_vol               bv    bidVol              int
    ob_ms_timestamp       tso   obMsTimestamp       unix_ms
    open_price            o     openPrice           num
    yield                 y     yield               num
    lotsize               lot   lotSize             num
    lotvalue              lotv  lotValue            num
    facevalue             fv    faceValue           num
    type                  t     type                str
    total_bid_vol         tbv   totalBidVol         int
    total_ask_vol         tav   totalAskVol         int
    accrued_interest      -     -                   num deprecated
    change                -     change              num
    change_percent        -     changePercent       num
    -                     -     currency            str
    """,
    # §3.5 currency pairs
    "currency_pair": """
    firstCode   firstCode   firstCode   str
    secondCode  secondCode  secondCode  str
    symbolTom   symbolTom   symbolTom   str
    """,
    # Table 3.C
    "orderbook": """
    snapshot      -    -            bool deprecated
    bids          b    bids         obj
    bids.price    b.p  bids.price   num
    bids.volume   b.v  bids.volume  int
    asks          a    asks         obj
    asks.price    a.p  asks.price   num
    asks.volume   a.v  asks.volume  int
    timestamp     -    -            num deprecated
    ms_timestamp  t    msTimestamp  unix_ms
    existing      h    existing     bool
    -             b.y  -            num
    -             a.y  -            num
    """,
    # Table 3.D
    "trade": """
    id         id   id         int
    orderno    -    -          str
    symbol     sym  symbol     str
    board      bd   board      str
    qty        q    qty        int
    price      px   price      num
    time       -    time       iso
    timestamp  t    timestamp  unix_ms
    side       s    side       str
    oi         oi   oi         int
    existing   h    existing   bool
    """,
    # Table 3.E
    "history": """
    history         history    history         obj
    history.time    history.t  history.time    unix_s
    history.close   history.c  history.close   num
    history.open    history.o  history.open    num
    history.high    history.h  history.high    num
    history.low     history.l  history.low     num
    history.volume  history.v  history.volume  int
    next            next       next            int
    prev            prev       prev            int
    """,
    # §3.9 risk rates
    "risk_rate": """
    id                      id                      id                      int
    instrument              instrument              instrument              str
    exchange                exchange                exchange                str
    riskCategoryId          riskCategoryId          riskCategoryId          int
    securityRiskCategoryId  securityRiskCategoryId  securityRiskCategoryId  num
    assetType               assetType               assetType               str
    underlyingAsset         underlyingAsset         underlyingAsset         str
    setName                 setName                 setName                 str
    isin                    isin                    isin                    str
    currencyCode            currencyCode            currencyCode            str
    rateUp                  rateUp                  rateUp                  num
    rateDown                rateDown                rateDown                num
    rateSymmetric           rateSymmetric           rateSymmetric           num
    isShortSellPossible     isShortSellPossible     isShortSellPossible     bool
    isMarginal              isMarginal              isMarginal              bool
    setRate                 setRate                 setRate                 num
    sgnR                    sgnR                    sgnR                    int
    """,
    # Table 3.F
    "summary": """
    buyingPowerAtMorning               bpm      buyingPowerAtMorning               num
    buyingPower                        bp       buyingPower                        num
    profit                             p        profit                             num
    profitRate                         pr       profitRate                         num
    portfolioEvaluation                pe       portfolioEvaluation                num
    portfolioLiquidationValue          plv      portfolioLiquidationValue          num
    initialMargin                      im       initialMargin                      num
    correctedMargin                    mgc      correctedMargin                    num
    riskBeforeForcePositionClosing     r        riskBeforeForcePositionClosing     num
    commission                         cms      commission                         num
    buyingPowerByCurrency              bpv2     buyingPowerByCurrency              obj
    buyingPowerByCurrency.currency     bpv2.cr  buyingPowerByCurrency.currency     str
    buyingPowerByCurrency.buyingPower  bpv2.bp  buyingPowerByCurrency.buyingPower  num
    """,
    # Table 3.G
    "position": """
    volume             v      volume             num
    currentVolume      cv     currentVolume      num
    symbol             sym    symbol             str
    brokerSymbol       tic    brokerSymbol       str
    portfolio          p      portfolio          str
    exchange           ex     exchange           str
    avgPrice           pxavg  avgPrice           num
    qtyUnits           q      qtyUnits           num
    openUnits          o      openUnits          num
    lotSize            lot    lotSize            num
    shortName          n      shortName          str
    qtyT0              q0     qtyT0              num
    qtyT1              q1     qtyT1              num
    qtyT2              q2     qtyT2              num
    qtyTFuture         qf     qtyTFuture         num
    qtyT0Batch         -      qtyT0Batch         num
    qtyT1Batch         -      qtyT1Batch         num
    qtyT2Batch         -      qtyT2Batch         num
    qtyTFutureBatch    -      qtyTFutureBatch    num
    qtyBatch           -      -                  num
    openQtyBatch       -      openQtyBatch       num
    qty                -      -                  num
    open               -      -                  num
    dailyUnrealisedPl  upd    dailyUnrealisedPl  num
    unrealisedPl       up     unrealisedPl       num
    isCurrency         cur    isCurrency         bool
    existing           h      existing           bool
    """,
    # Table 3.H
    "risk": """
    portfolio                  p     portfolio                  str
    exchange                   ex    exchange                   str
    portfolioEvaluation        pe    portfolioEvaluation        num
    portfolioLiquidationValue  plv   portfolioLiquidationValue  num
    initialMargin              mgi   initialMargin              num
    minimalMargin              mgmn  minimalMargin              num
    correctedMargin            mgc   correctedMargin            num
    riskCoverageRatioOne       r1    riskCoverageRatioOne       num
    riskCoverageRatioTwo       r2    riskCoverageRatioTwo       num
    riskCategoryId             rid   riskCategoryId             int
    clientType                 ct    clientType                 str
    hasForbiddenPositions      fpos  hasForbiddenPositions      bool
    hasNegativeQuantity        nq    hasNegativeQuantity        bool
    riskStatus                 rst   riskStatus                 str
    calculationTime            t     calculationTime            iso
    """,
    # Table 3.I
    "forts_risk": """
    balanceMoney         -    -                    num deprecated
    portfolio            p    portfolio            str
    moneyFree            f    moneyFree            num
    moneyBlocked         b    moneyBlocked         num
    fee                  fee  fee                  num
    moneyOld             o    moneyOld             num
    moneyAmount          a    moneyAmount          num
    moneyPledgeAmount    pa   moneyPledgeAmount    num
    vmInterCl            mgc  vmInterCl            num
    vmCurrentPositions   mgp  vmCurrentPositions   num
    varMargin            -    varMargin            num
    indicativeVarMargin  ivm  indicativeVarMargin  num
    netOptionValue       nov  netOptionValue       num
    posRisk              pr   posRisk              num
    isLimitsSet          lim  isLimitsSet          bool
    """,
    # Table 3.J
    "money": """
    cash        c    cash        num
    used        u    used        num
    open        o    open        num
    profit      pf   profit      num
    profitRate  pfr  profitRate  num
    comission   cms  comission   num
    changes     ch   changes     num
    portfolio   p    portfolio   str
    free        f    free        num
    """,
    # Table 3.K
    "order": """
    id                                  id     id                                  str
    symbol                              sym    symbol                              str
    board                               bd     board                               str
    brokerSymbol                        tic    brokerSymbol                        str
    portfolio                           p      portfolio                           str
    exchange                            ex     exchange                            str
    comment                             cmt    comment                             str
    type                                t      type                                str
    side                                s      side                                str
    status                              st     status                              str
    transTime                           tt     transTime                           iso
    updateTime                          ut     updateTime                          iso
    endTime                             et     endTime                             iso
    qtyUnits                            q      qtyUnits                            int
    qtyBatch                            qb     qtyBatch                            int
    qty                                 -      -                                   int
    filledQtyUnits                      fq     filledQtyUnits                      num
    filledQtyBatch                      fqb    filledQtyBatch                      num
    filled                              -      -                                   num
    price                               px     price                               num
    existing                            h      existing                            bool
    timeInForce                         tf     timeInForce                         str
    iceberg                             i      iceberg                             obj
    iceberg.creationFixedQuantity       i.cf   iceberg.creationFixedQuantity       int
    iceberg.creationVarianceQuantity    i.cv   iceberg.creationVarianceQuantity    int
    iceberg.visibleQuantity             i.v    iceberg.visibleQuantity             int
    iceberg.visibleQuantityBatch        i.vb   iceberg.visibleQuantityBatch        int
    iceberg.visibleFilledQuantity       i.vf   iceberg.visibleFilledQuantity       int
    iceberg.visibleFilledQuantityBatch  i.vfb  iceberg.visibleFilledQuantityBatch  int
    volume                              v      volume                              num
    """,
    # Table 3.L
    "stop_order": """
    id                                  id     id                                  str
    exchangeOrderId                     eid    exchangeOrderId                     str
    symbol                              sym    symbol                              str
    brokerSymbol                        tic    brokerSymbol                        str
    portfolio                           p      portfolio                           str
    exchange                            ex     exchange                            str
    comment                             cmt    comment                             str
    board                               bd     board                               str
    type                                t      type                                str
    side                                s      side                                str
    condition                           cnd    condition                           str
    status                              st     status                              str
    transTime                           tt     transTime                           iso
    updateTime                          ut     updateTime                          iso
    endTime                             et     endTime                             iso
    error                               err    error                               str
    qtyUnits                            q      qtyUnits                            num
    qtyBatch                            qb     qtyBatch                            int
    qty                                 -      -                                   int
    filled                              -      -                                   num deprecated
    filledQtyUnits                      fq     filledQtyUnits                      num
    filledQtyBatch                      fqb    filledQtyBatch                      num
    price                               px     price                               num
    avg_price                           pxavg  avgPrice                            num
    stopPrice                           pxs    stopPrice                           num
    existing                            h      existing                            bool
    timeInForce                         tf     timeInForce                         str
    iceberg                             i      iceberg                             obj
    iceberg.creationFixedQuantity       i.cf   iceberg.creationFixedQuantity       int
    iceberg.creationVarianceQuantity    i.cv   iceberg.creationVarianceQuantity    int
    iceberg.visibleQuantity             i.v    iceberg.visibleQuantity             int
    iceberg.visibleQuantityBatch        i.vb   iceberg.visibleQuantityBatch        int
    iceberg.visibleFilledQuantity       i.vf   iceberg.visibleFilledQuantity       int
    iceberg.visibleFilledQuantityBatch  i.vfb  iceberg.visibleFilledQuantityBatch  int
    volume                              v      volume                              num
    protectingSeconds                   psec   protectingSeconds                   int
    """,
    # Table 3.M
    "own_trade": """
    id                                id     id                                str
    orderno                           eid    orderNo                           str
    comment                           cmt    comment                           str
    symbol                            sym    symbol                            str
    brokerSymbol                      tic    brokerSymbol                      str
    exchange                          ex     exchange                          str
    date                              d      date                              iso
    board                             b      board                             str
    qtyUnits                          q      qtyUnits                          int
    qtyBatch                          qb     qtyBatch                          int
    qty                               -      qty                               int
    price                             px     price                             num
    accruedInt                        ai     accruedInt                        num
    side                              s      side                              str
    existing                          h      existing                          bool
    commission                        cms    commission                        num
    repoSpecificFields                r      repoSpecificFields                obj
    repoSpecificFields.repoRate       r.r    repoSpecificFields.repoRate       num
    repoSpecificFields.extRef         r.exr  repoSpecificFields.extRef         str
    repoSpecificFields.repoTerm       r.tm   repoSpecificFields.repoTerm       int
    repoSpecificFields.account        r.a    repoSpecificFields.account        str
    repoSpecificFields.tradeTypeInfo  r.t    repoSpecificFields.tradeTypeInfo  str
    repoSpecificFields.value          r.v    repoSpecificFields.value          num
    repoSpecificFields.yield          r.y    repoSpecificFields.yield          num
    volume                            v      volume                            num
    -                                 -      shortName                         str
    -                                 -      currency                          str
    -                                 -      settleDate                        iso
    """,
    # Table 4.A
    "instrument_state": """
    symbol             sym    symbol             str
    exchange           ex     exchange           str
    board              bd     board              str
    tradingStatus      st     tradingStatus      int
    tradingStatusInfo  sti    tradingStatusInfo  str
    priceMin           pxmn   priceMin           num
    priceMax           pxmx   priceMax           num
    marginBuy          mgb    marginBuy          num
    marginSell         mgs    marginSell         num
    marginSyntetic     mgsnt  marginSyntetic     num
    theorPrice         pxt    theorPrice         num
    theorPriceLimit    pxtl   theorPriceLimit    num
    volatility         vl     volatility         num
    """,
}

# REFERENCE §7 #1: the Slim candle list is `history` in the spec's schema, `h` in its example and
# in ALOR's SDK; the schema emits `h` and accepts both.
EMITTED_OTHERWISE = {("history", "Slim", "history"): "h"}

# Current fields that are not DataFrame columns: the trade's ISO `time` (Simple and Heavy) repeats
# `timestamp`, and Slim lacks it.
KEPT_OUT_OF_FRAMES = {("trade", "time_iso")}

# The value kinds each documented type allows.
KINDS_OF_TYPE = {"str": {"str", "lower"}, "num": {"float"}, "int": {"int", "i8"}, "bool": {"bool"},
                 "iso": {"iso"}, "unix_s": {"ts_s"}, "unix_ms": {"ts_ms"}}


def documented_rows(name: str) -> list[tuple[list[str], str, bool]]:
    rows = []
    for line in DOCUMENTED[name].strip().splitlines():
        simple, slim, heavy, typ, *flags = line.split()
        rows.append(([simple, slim, heavy], typ, "deprecated" in flags))
    return rows


def resolve(schema: Schema, keys: list[str]) -> tuple[Schema, list[str | None]]:
    """The (sub-)schema a documented row belongs to, and the row's keys within it."""
    dotted = [k.split(".") if k != "-" else None for k in keys]
    if all(d is None or len(d) == 1 for d in dotted):
        return schema, [d[0] if d else None for d in dotted]
    fmt, path = next((f, d) for f, d in zip(FORMATS, dotted, strict=True) if d)
    container = next(f for f in schema.fields if path[0] in f.keys(fmt))
    assert container.sub, f"{path[0]} holds no objects"
    return SCHEMAS[container.sub], [d[1] if d else None for d in dotted]


def find_field(schema: Schema, keys: list[str | None]) -> Any:
    fmt, key = next((f, k) for f, k in zip(FORMATS, keys, strict=True) if k)
    return next((f for f in schema.fields if key in f.keys(fmt)), None)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_documented_field_has_its_keys_and_kind(name: str) -> None:
    wrong = []
    for keys, typ, deprecated in documented_rows(name):
        schema, own_keys = resolve(SCHEMAS[name], keys)
        field = find_field(schema, own_keys)
        if field is None:
            wrong.append(f"{keys}: no field")
            continue
        for fmt, key in zip(FORMATS, own_keys, strict=True):
            emitted = EMITTED_OTHERWISE.get((schema.name, fmt, key), key)
            if field.key(fmt) != emitted or (key and key not in field.keys(fmt)):
                wrong.append(f"{schema.name}.{field.name} {fmt}: {field.keys(fmt)}, documented {key}")
        if typ == "obj" and not field.sub or typ != "obj" and field.kind not in KINDS_OF_TYPE[typ]:
            wrong.append(f"{schema.name}.{field.name}: kind {field.kind}, documented {typ}")
        simple_only = keys[0] != "-" and keys[1:] == ["-", "-"]
        out_of_frame = deprecated or simple_only or (schema.name, field.name) in KEPT_OUT_OF_FRAMES
        if field.legacy != out_of_frame:
            wrong.append(f"{schema.name}.{field.name}: legacy {field.legacy}, documented "
                         f"{'deprecated' if deprecated else 'Simple-only' if simple_only else 'current'}")
    assert wrong == []


def test_every_field_is_documented() -> None:
    documented = set()
    for name in DOCUMENTED:
        for keys, _, _ in documented_rows(name):
            schema, own_keys = resolve(SCHEMAS[name], keys)
            field = find_field(schema, own_keys)
            if field is not None:
                documented.add((schema.name, field.name))
    undocumented = {(s.name, f.name) for s in SCHEMAS.values() for f in s.fields} - documented
    # the session status of §3.9 has no table, only its example (in EXAMPLES)
    assert undocumented == {("market_status", "market"), ("market_status", "status")}


# (schema, format, lists every field of the format, example object as in REFERENCE)
EXAMPLES = [
    ('security', 'Simple', False, '{"symbol": "CNY-6.25", "shortname": "CRM5", "description": "CRM5", "exchange": "MOEX", "market": "FORTS", "type": "Фьючерсный контракт CNY-6.25", "lotsize": 1, "facevalue": 1000, "cfiCode": "FFXCSX", "cancellation": "2025-06-19T00:00:00.0000000", "minstep": 0.001, "rating": 4952434, "marginbuy": 986.39, "marginsell": 1004.16, "marginrate": 0, "pricestep": 1, "priceMax": 11.868, "priceMin": 10.774, "theorPrice": 0, "theorPriceLimit": 0, "volatility": 0, "currency": "RUB", "ISIN": null, "yield": null, "board": "RFUD", "primary_board": "RFUD", "tradingStatus": 17, "tradingStatusInfo": "нормальный период торгов", "complexProductCategory": "2", "priceMultiplier": 1, "priceShownUnits": 1}'),  # 3.A
    ('security', 'Slim', False, '{"sym": "CNY-6.25", "n": "CRM5", "desc": "CRM5", "ex": "MOEX", "t": "Фьючерсный контракт CNY-6.25", "lot": 1, "fv": 1000, "cfi": "FFXCSX", "stp": 0.001, "cncl": "2025-06-19T00:00:00.0000000", "rt": 4952434, "mgb": 986.39, "mgs": 1004.16, "mgrt": 0, "stppx": 1, "pxmx": 11.868, "pxmn": 10.774, "pxt": 0, "pxtl": 0, "pxmu": 1, "pxu": 1, "vl": 0, "cur": "RUB", "isin": null, "yld": null, "bd": "RFUD", "pbd": "RFUD", "st": 17, "sti": "нормальный период торгов", "cpct": "2"}'),  # 3.A
    ('security', 'Heavy', False, '{"symbol": "CNY-6.25", "shortName": "CRM5", "description": "CRM5", "exchange": "MOEX", "market": "FORTS", "type": "Фьючерсный контракт CNY-6.25", "lotSize": 1, "faceValue": 1000, "cfiCode": "FFXCSX", "cancellation": "2025-06-19T00:00:00.0000000", "minStep": 0.001, "roundTo": 3, "rating": 4952434, "marginBuy": 986.39, "marginSell": 1004.16, "marginRate": 0, "priceStep": 1, "priceMax": 11.868, "priceMin": 10.774, "theorPrice": 0, "theorPriceLimit": 0, "volatility": 0, "currency": "RUB", "nominalCurrency": "RUB", "settlementCurrency": null, "underlyingCurrency": null, "ISIN": null, "yield": null, "board": "RFUD", "primaryBoard": "RFUD", "tradingStatus": 17, "tradingStatusInfo": "нормальный период торгов", "complexProductCategory": "2", "priceMultiplier": 1, "priceShownUnits": 1, "initialMarginLowRiskLong": 2401.94, "initialMarginLowRiskShort": 2446.65}'),  # 3.A
    ('quote', 'Simple', True, '{"symbol": "SBER", "exchange": "MOEX", "description": "Сбербанк России ПАО ао", "prev_close_price": 313.49, "last_price": 314.51, "last_price_timestamp": 1715603781, "high_price": 315.7, "low_price": 314.04, "accruedInt": 0, "volume": 15237560, "open_interest": null, "ask": 314.71, "bid": 314.7, "ask_vol": 276, "bid_vol": 305, "ob_ms_timestamp": null, "open_price": 314.1, "yield": null, "lotsize": 10, "lotvalue": 3145.1, "facevalue": 3, "type": "CS", "total_bid_vol": 361175, "total_ask_vol": 614990, "accrued_interest": 0, "change": 1.02, "change_percent": 0.33}'),  # 3.B
    ('quote', 'Slim', True, '{"sym": "SBER", "ex": "MOEX", "desc": "Сбербанк России ПАО ао", "tst": 1715603781, "tso": null, "o": 314.1, "h": 315.7, "l": 314.04, "c": 314.51, "v": 15237560, "acci": 0, "oi": null, "y": null, "ask": 314.99, "bid": 314.98, "av": 576, "bv": 49, "tbv": 360177, "tav": 617847, "lot": 10, "lotv": 3145.1, "fv": 3, "t": "CS"}'),  # 3.B
    ('quote', 'Heavy', True, '{"symbol": "SBER", "exchange": "MOEX", "description": "Сбербанк России ПАО ао", "currency": "RUB", "prevClosePrice": 313.49, "lastPrice": 314.51, "lastPriceTimestamp": 1715603781, "highPrice": 315.7, "lowPrice": 314.04, "accruedInterest": 0, "volume": 15237560, "openInterest": null, "ask": 314.99, "bid": 314.98, "askVol": 576, "bidVol": 49, "obMsTimestamp": null, "openPrice": 314.1, "yield": null, "lotSize": 10, "lotValue": 3145.1, "faceValue": 3, "type": "CS", "totalBidVol": 360177, "totalAskVol": 617847, "change": 1.02, "changePercent": 0.33}'),  # 3.B
    ('currency_pair', 'Simple', True, '{"firstCode": "EUR", "secondCode": "RUB", "symbolTom": "EUR_RUB__TOM"}'),  # pairs
    ('currency_pair', 'Slim', True, '{"firstCode": "EUR", "secondCode": "RUB", "symbolTom": "EUR_RUB__TOM"}'),  # pairs
    ('currency_pair', 'Heavy', True, '{"firstCode": "EUR", "secondCode": "RUB", "symbolTom": "EUR_RUB__TOM"}'),  # pairs
    ('orderbook', 'Simple', True, '{"snapshot": true, "bids": [{"price": 281.98, "volume": 36}], "asks": [{"price": 281.99, "volume": 11}], "timestamp": 1701105939, "ms_timestamp": 1701105939395, "existing": true}'),  # 3.C
    ('orderbook', 'Slim', True, '{"b": [{"p": 281.98, "v": 36}], "a": [{"p": 281.99, "v": 11}], "t": 1701105939395, "h": true}'),  # 3.C
    ('orderbook', 'Slim', True, '{"b": [{"p": 70.589, "v": 146, "y": 16.21}], "a": [{"p": 70.772, "v": 10, "y": 16.14}], "t": 1721372266417, "h": false}'),  # 3.C bonds
    ('orderbook', 'Heavy', True, '{"bids": [{"price": 281.98, "volume": 36}], "asks": [{"price": 281.99, "volume": 11}], "msTimestamp": 1701105939395, "existing": true}'),  # 3.C
    ('trade', 'Simple', True, '{"id": 159, "orderno": 0, "symbol": "SBER", "board": "TQBR", "qty": 1, "price": 142.52, "time": "2018-08-07T08:40:03.445Z", "timestamp": 1611158710768, "side": "buy", "oi": 523920, "existing": false}'),  # 3.D
    ('trade', 'Slim', True, '{"id": 159, "sym": "SBER", "bd": "TQBR", "q": 1, "px": 142.52, "t": 1611158710768, "s": "buy", "oi": 523920, "h": false}'),  # 3.D
    ('trade', 'Heavy', True, '{"id": 159, "symbol": "SBER", "board": "TQBR", "qty": 1, "price": 142.52, "time": "2018-08-07T08:40:03.445Z", "timestamp": 1611158710768, "side": "buy", "oi": 523920, "existing": false}'),  # 3.D
    ('history', 'Simple', True, '{"history": [{"time": 1701068400, "close": 287.79, "open": 287.41, "high": 287.9, "low": 287, "volume": 174466}], "next": 1701069000, "prev": 1701068100}'),  # 3.E
    ('history', 'Slim', True, '{"h": [{"t": 1701068400, "c": 287.79, "o": 287.41, "h": 287.9, "l": 287, "v": 174466}], "next": 1701069000, "prev": 1701068100}'),  # 3.E
    ('history', 'Heavy', True, '{"history": [{"time": 1701068400, "close": 287.79, "open": 287.41, "high": 287.9, "low": 287, "volume": 174466}], "next": 1701069000, "prev": 1701068100}'),  # 3.E
    ('risk_rate', 'Simple', True, '{"id": 65419, "instrument": "SBER", "exchange": "MOEX", "riskCategoryId": 5, "securityRiskCategoryId": 2, "assetType": "stock", "underlyingAsset": null, "setName": null, "isin": "RU0009029540", "currencyCode": "RUB", "rateUp": 12.403999999999998, "rateDown": 5.795999999999999, "rateSymmetric": 13.089999999999998, "isShortSellPossible": true, "isMarginal": true, "setRate": 0, "sgnR": 0}'),  # rates
    ('risk_rate', 'Slim', True, '{"id": 65419, "instrument": "SBER", "exchange": "MOEX", "riskCategoryId": 5, "securityRiskCategoryId": 2, "assetType": "stock", "underlyingAsset": null, "setName": null, "isin": "RU0009029540", "currencyCode": "RUB", "rateUp": 12.403999999999998, "rateDown": 5.795999999999999, "rateSymmetric": 13.089999999999998, "isShortSellPossible": true, "isMarginal": true, "setRate": 0, "sgnR": 0}'),  # rates
    ('risk_rate', 'Heavy', True, '{"id": 65419, "instrument": "SBER", "exchange": "MOEX", "riskCategoryId": 5, "securityRiskCategoryId": 2, "assetType": "stock", "underlyingAsset": null, "setName": null, "isin": "RU0009029540", "currencyCode": "RUB", "rateUp": 12.403999999999998, "rateDown": 5.795999999999999, "rateSymmetric": 13.089999999999998, "isShortSellPossible": true, "isMarginal": true, "setRate": 0, "sgnR": 0}'),  # rates
    ('summary', 'Simple', True, '{"buyingPowerAtMorning": 439844.15, "buyingPower": 452404, "profit": 12560, "profitRate": 1.93, "portfolioEvaluation": 651717, "portfolioLiquidationValue": 651717, "initialMargin": 199313, "correctedMargin": 15752.115, "riskBeforeForcePositionClosing": 552061, "commission": 24.21, "buyingPowerByCurrency": [{"currency": "RUB", "buyingPower": 452404.21945092}]}'),  # 3.F
    ('summary', 'Slim', True, '{"bpm": 439844.15, "bp": 452404, "p": 12560, "pr": 1.93, "pe": 651717, "plv": 651717, "im": 199313, "mgc": 15752.115, "r": 552061, "cms": 24.21, "bpv2": [{"cr": "RUB", "bp": 452404.21945092}]}'),  # 3.F
    ('summary', 'Heavy', True, '{"buyingPowerAtMorning": 439844.15, "buyingPower": 452404, "profit": 12560, "profitRate": 1.93, "portfolioEvaluation": 651717, "portfolioLiquidationValue": 651717, "initialMargin": 199313, "correctedMargin": 15752.115, "riskBeforeForcePositionClosing": 552061, "commission": 24.21, "buyingPowerByCurrency": [{"currency": "RUB", "buyingPower": 452404.21945092}]}'),  # 3.F
    ('position', 'Simple', True, '{"volume": 549.198, "currentVolume": 555.24, "symbol": "APTK", "brokerSymbol": "MOEX:APTK", "portfolio": "D00013", "exchange": "MOEX", "avgPrice": 9.1533, "qtyUnits": 60, "openUnits": 60, "lotSize": 10, "shortName": "Аптеки36и6", "qtyT0": 60, "qtyT1": 60, "qtyT2": 60, "qtyTFuture": 60, "qtyT0Batch": 6, "qtyT1Batch": 6, "qtyT2Batch": 6, "qtyTFutureBatch": 6, "qtyBatch": 6, "openQtyBatch": 6, "qty": 6, "open": 6, "dailyUnrealisedPl": 1.92, "unrealisedPl": 7.962, "isCurrency": false, "existing": true}'),  # 3.G
    ('position', 'Slim', True, '{"v": 549.198, "cv": 555.24, "sym": "APTK", "tic": "MOEX:APTK", "p": "D00013", "ex": "MOEX", "pxavg": 9.1533, "q": 60, "o": 60, "lot": 10, "n": "Аптеки36и6", "q0": 60, "q1": 60, "q2": 60, "qf": 60, "upd": 1.92, "up": 7.962, "cur": false, "h": true}'),  # 3.G
    ('position', 'Heavy', True, '{"volume": 549.198, "currentVolume": 555.24, "symbol": "APTK", "brokerSymbol": "MOEX:APTK", "portfolio": "D00013", "exchange": "MOEX", "avgPrice": 9.1533, "qtyUnits": 60, "openUnits": 60, "lotSize": 10, "shortName": "Аптеки36и6", "qtyT0": 60, "qtyT1": 60, "qtyT2": 60, "qtyTFuture": 60, "qtyT0Batch": 6, "qtyT1Batch": 6, "qtyT2Batch": 6, "qtyTFutureBatch": 6, "openQtyBatch": 6, "dailyUnrealisedPl": 1.92, "unrealisedPl": 7.962, "isCurrency": false, "existing": true}'),  # 3.G
    ('risk', 'Simple', True, '{"portfolio": "7500GHC", "exchange": "MOEX", "portfolioEvaluation": 646270.9, "portfolioLiquidationValue": 646270.9, "initialMargin": 15752.115, "minimalMargin": 65177.0575, "correctedMargin": 15752.115, "riskCoverageRatioOne": 630518.785, "riskCoverageRatioTwo": 638394.8425, "riskCategoryId": 2, "clientType": "StandardRisk", "hasForbiddenPositions": false, "hasNegativeQuantity": false, "riskStatus": "Ok", "calculationTime": "2025-04-19T10:17:54.8283796Z"}'),  # 3.H
    ('risk', 'Slim', True, '{"p": "7500GHC", "ex": "MOEX", "pe": 646270.9, "plv": 646270.9, "mgi": 15752.115, "mgmn": 65177.0575, "mgc": 15752.115, "r1": 630518.785, "r2": 638394.8425, "rid": 2, "ct": "StandardRisk", "fpos": false, "nq": false, "rst": "Ok", "t": "2025-04-19T10:17:54.8283796Z"}'),  # 3.H
    ('risk', 'Heavy', True, '{"portfolio": "7500GHC", "exchange": "MOEX", "portfolioEvaluation": 646270.9, "portfolioLiquidationValue": 646270.9, "initialMargin": 15752.115, "minimalMargin": 65177.0575, "correctedMargin": 15752.115, "riskCoverageRatioOne": 630518.785, "riskCoverageRatioTwo": 2557.0824546, "riskCategoryId": 2, "clientType": "StandardRisk", "hasForbiddenPositions": false, "hasNegativeQuantity": false, "riskStatus": "Ok", "calculationTime": "2025-04-19T10:17:54.8283796Z"}'),  # 3.H
    ('forts_risk', 'Simple', True, '{"balanceMoney": 0, "portfolio": "7500GHC", "moneyFree": 452404, "moneyBlocked": 12560, "fee": 651717, "moneyOld": 651717, "moneyAmount": 199313, "moneyPledgeAmount": 552061, "vmInterCl": 651717, "vmCurrentPositions": 199313, "varMargin": 552061, "indicativeVarMargin": 1720.32124, "netOptionValue": 0, "posRisk": 0, "isLimitsSet": false}'),  # 3.I
    ('forts_risk', 'Slim', True, '{"p": "7500GHC", "f": 452404, "b": 12560, "fee": 651717, "o": 651717, "a": 199313, "pa": 552061, "mgc": 651717, "mgp": 199313, "ivm": 1720.32124, "nov": 0, "pr": 0, "lim": false}'),  # 3.I
    ('forts_risk', 'Heavy', True, '{"portfolio": "7500GHC", "moneyFree": 452404, "moneyBlocked": 12560, "fee": 651717, "moneyOld": 651717, "moneyAmount": 199313, "moneyPledgeAmount": 552061, "vmInterCl": 651717, "vmCurrentPositions": 199313, "varMargin": 552061, "indicativeVarMargin": 1720.32124, "netOptionValue": 0, "posRisk": 0, "isLimitsSet": false}'),  # 3.I
    ('order', 'Simple', False, '{"id": "41423837024", "symbol": "GAZP", "brokerSymbol": "MOEX:GAZP", "portfolio": "D00013", "exchange": "MOEX", "comment": "Приказ на продажу", "type": "limit", "side": "buy", "status": "working", "transTime": "2023-12-11T07:02:48.0000000Z", "updateTime": "2023-12-11T07:02:48.0000000Z", "endTime": "2023-12-11T23:59:59.9990000Z", "qtyUnits": 10, "qtyBatch": 1, "qty": 1, "filledQtyUnits": 0, "filledQtyBatch": 0, "filled": 0, "price": 161.15, "existing": true, "timeInForce": "oneday", "iceberg": null, "volume": 1611.5}'),  # 3.K
    ('order', 'Slim', False, '{"id": "41423837024", "sym": "GAZP", "tic": "MOEX:GAZP", "p": "D00013", "ex": "MOEX", "cmt": "Приказ на продажу", "t": "limit", "s": "buy", "st": "working", "tt": "2023-12-11T07:02:48.0000000Z", "ut": "2023-12-11T07:02:48.0000000Z", "et": "2023-12-11T23:59:59.9990000", "q": 10, "qb": 1, "fq": 0, "fqb": 0, "px": 161.15, "h": true, "tf": "fillorkill", "i": null, "v": 1611.5}'),  # 3.K
    ('order', 'Heavy', False, '{"id": "41423837024", "symbol": "GAZP", "brokerSymbol": "MOEX:GAZP", "portfolio": "D00013", "exchange": "MOEX", "comment": "Приказ на продажу", "type": "limit", "side": "buy", "status": "working", "transTime": "2023-12-11T07:02:48.0000000Z", "updateTime": "2023-12-11T07:02:48.0000000Z", "endTime": "2023-12-11T23:59:59.9990000Z", "qtyUnits": 10, "qtyBatch": 1, "filledQtyUnits": 0, "filledQtyBatch": 0, "price": 161.15, "existing": true, "timeInForce": "fillorkill", "iceberg": null, "volume": 1611.5}'),  # 3.K
    ('stop_order', 'Simple', True, '{"id": 347499, "exchangeOrderId": 425242362, "symbol": "SBER", "brokerSymbol": "MOEX:LKOH", "portfolio": "D39004", "exchange": "MOEX", "comment": null, "board": "TQBR", "type": "stop", "side": "buy", "condition": "LessOrEqual", "status": "working", "transTime": "2020-05-16T23:59:59.9990000Z", "updateTime": null, "endTime": "2020-06-16T23:59:59.9990000Z", "error": null, "qtyUnits": 10, "qtyBatch": 1, "qty": 1, "filled": 0, "filledQtyUnits": 0, "filledQtyBatch": 0, "price": 0, "avg_price": 0, "stopPrice": 208.6, "existing": true, "timeInForce": "oneday", "iceberg": null, "volume": 2086.1, "protectingSeconds": 15}'),  # 3.L
    ('stop_order', 'Slim', True, '{"id": 347499, "eid": 425242362, "sym": "SBER", "tic": "MOEX:LKOH", "p": "D39004", "ex": "MOEX", "cmt": null, "bd": "TQBR", "t": "stop", "s": "buy", "cnd": "LessOrEqual", "st": "working", "tt": "2020-05-16T23:59:59.9990000Z", "ut": null, "et": "2020-06-16T23:59:59.9990000Z", "err": null, "q": 10, "qb": 1, "fq": 0, "fqb": 0, "px": 0, "pxavg": 0, "pxs": 208.6, "h": true, "tf": "oneday", "i": null, "v": 2086.1, "psec": 15}'),  # 3.L
    ('stop_order', 'Heavy', True, '{"id": 347499, "exchangeOrderId": 425242362, "symbol": "SBER", "brokerSymbol": "MOEX:LKOH", "portfolio": "D39004", "exchange": "MOEX", "comment": null, "board": "TQBR", "type": "stop", "side": "buy", "condition": "LessOrEqual", "status": "working", "transTime": "2020-05-16T23:59:59.9990000Z", "updateTime": null, "endTime": "2020-06-16T23:59:59.9990000Z", "error": null, "qtyUnits": 10, "qtyBatch": 1, "filledQtyUnits": 0, "filledQtyBatch": 0, "price": 0, "avgPrice": 0, "stopPrice": 208.6, "existing": true, "timeInForce": "oneday", "iceberg": null, "volume": 2086.1, "protectingSeconds": 15}'),  # 3.L
    ('own_trade', 'Simple', True, '{"id": "9055212111", "orderno": "41129409599", "comment": null, "symbol": "APTK", "brokerSymbol": "MOEX:APTK", "exchange": "MOEX", "date": "2023-11-28T07:52:36.0000000Z", "board": "TQBR", "qtyUnits": 10, "qtyBatch": 1, "qty": 1, "price": 13.492, "accruedInt": 0, "side": "buy", "existing": false, "commission": 0.10746, "repoSpecificFields": null, "volume": 134.92}'),  # 3.M
    ('own_trade', 'Slim', True, '{"id": "9055212111", "eid": "41129409599", "cmt": null, "sym": "APTK", "tic": "MOEX:APTK", "ex": "MOEX", "d": "2023-11-28T07:52:36.0000000Z", "b": "TQBR", "q": 10, "qb": 1, "px": 13.492, "ai": 0, "s": "buy", "h": false, "cms": 0.10746, "r": null, "v": 134.92}'),  # 3.M
    ('own_trade', 'Heavy', True, '{"id": "9055212111", "orderNo": "41129409599", "comment": null, "symbol": "APTK", "shortName": "Аптеки36и6", "brokerSymbol": "MOEX:APTK", "exchange": "MOEX", "date": "2023-11-28T07:52:36.0000000Z", "board": "TQBR", "qtyUnits": 10, "qtyBatch": 1, "qty": 1, "price": 13.492, "currency": "RUB", "accruedInt": 0, "side": "buy", "existing": false, "commission": 0.10746, "repoSpecificFields": null, "volume": 134.92, "settleDate": "2024-12-31T23:59:59.0000000Z"}'),  # 3.M
    ('instrument_state', 'Simple', False, '{"symbol": "SBER", "exchange": "MOEX", "board": "TQBR", "tradingStatus": 17, "tradingStatusInfo": "нормальный период торгов", "priceMin": 228.78, "priceMax": 279.96}'),  # 4.A full
    ('instrument_state', 'Simple', False, '{"symbol": "SBER", "priceMin": 228.78, "priceMax": 279.96}'),  # 4.A partial
    ('instrument_state', 'Slim', False, '{"sym": "SBER", "ex": "MOEX", "bd": "TQBR", "st": 17, "sti": "нормальный период торгов", "pxmn": 228.78, "pxmx": 279.96}'),  # 4.A full
    ('instrument_state', 'Slim', False, '{"sym": "SBER", "pxmn": 228.78, "pxmx": 279.96}'),  # 4.A partial
    ('instrument_state', 'Heavy', False, '{"symbol": "SBER", "exchange": "MOEX", "board": "TQBR", "tradingStatus": 17, "tradingStatusInfo": "нормальный период торгов", "priceMin": 228.78, "priceMax": 279.96}'),  # 4.A full
    ('instrument_state', 'Heavy', False, '{"symbol": "SBER", "priceMin": 228.78, "priceMax": 279.96}'),  # 4.A partial
    ('market_status', 'Simple', True, '{"code": "FOND", "status": "open"}'),  # §3.9
    ('market_status', 'Slim', True, '{"code": "FOND", "status": "open"}'),  # §3.9
    ('market_status', 'Heavy', True, '{"code": "FOND", "status": "open"}'),  # §3.9
]

# Keys of examples absent from the schema (REFERENCE §3.0 names the Heavy security's currencies
# as extras; they are columns now, so none is left).
EXTRA_KEYS: dict[tuple[str, str], set[str]] = {}

# Documented as strings, but REFERENCE's examples carry numbers (§3.7 notes it for `orderno`);
# the frames turn them into strings.
NUMBERS_FOR_STRINGS = {("trade", "order_no"), ("stop_order", "id"),
                       ("stop_order", "exchange_order_id")}

LIST_CONTAINERS = {("orderbook", "bids"), ("orderbook", "asks"), ("history", "history"),
                   ("summary", "buying_power_by_currency")}

EXAMPLE_IDS = [f"{name}-{fmt}-{i}" for i, (name, fmt, _, _) in enumerate(EXAMPLES)]


def unmapped_keys(schema: Schema, obj: dict[str, Any], fmt: str) -> set[str]:
    """Keys of ``obj`` (at any depth, dotted) that no field of ``schema`` accepts in ``fmt``."""
    lost = set()
    for key, value in obj.items():
        field = next((f for f in schema.fields if key in f.keys(fmt)), None)
        if field is None:
            lost.add(key)
        elif field.sub and value is not None:
            for item in value if isinstance(value, list) else [value]:
                lost |= {f"{key}.{k}" for k in unmapped_keys(SCHEMAS[field.sub], item, fmt)}
    return lost


def kind_errors(schema: Schema, record: dict[str, Any]) -> list[str]:
    """Fields of a decoded record whose value is not of the field's kind (None is always fine)."""
    errors = []
    for name, value in record.items():
        field = schema.field(name)
        if value is None or (schema.name, name) in NUMBERS_FOR_STRINGS:
            continue
        if field.sub:
            for item in value if isinstance(value, list) else [value]:
                errors += [f"{name}.{e}" for e in kind_errors(SCHEMAS[field.sub], item)]
        elif not _is_of_kind(value, field.kind):
            errors.append(f"{name}={value!r} ({field.kind})")
    return errors


def _is_of_kind(value: Any, kind: str) -> bool:
    if kind in ("str", "lower", "iso"):
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "float":
        return isinstance(value, (int, float))
    return isinstance(value, int)  # int, i8, ts_s, ts_ms


@pytest.mark.parametrize(("name", "fmt", "complete", "text"), EXAMPLES, ids=EXAMPLE_IDS)
def test_every_key_of_an_example_maps_to_a_field(name: str, fmt: str, complete: bool,
                                                  text: str) -> None:
    obj = json.loads(text)
    assert unmapped_keys(SCHEMAS[name], obj, fmt) == EXTRA_KEYS.get((name, fmt), set())


@pytest.mark.parametrize(("name", "fmt", "complete", "text"), EXAMPLES, ids=EXAMPLE_IDS)
def test_an_example_decodes_to_values_of_the_declared_kinds(name: str, fmt: str, complete: bool,
                                                             text: str) -> None:
    schema = SCHEMAS[name]
    record = schema.decode(json.loads(text), fmt)
    assert record
    assert kind_errors(schema, record) == []


@pytest.mark.parametrize(("name", "fmt", "complete", "text"), EXAMPLES, ids=EXAMPLE_IDS)
def test_an_example_encodes_back_to_itself(name: str, fmt: str, complete: bool, text: str) -> None:
    schema, obj = SCHEMAS[name], json.loads(text)
    for extra in EXTRA_KEYS.get((name, fmt), ()):
        del obj[extra]
    assert schema.encode(schema.decode(obj, fmt), fmt) == obj


@pytest.mark.parametrize(("name", "fmt", "complete", "text"),
                         [e for e in EXAMPLES if e[2]], ids=[i for i, e in zip(EXAMPLE_IDS, EXAMPLES, strict=True) if e[2]])
def test_a_complete_example_has_exactly_the_keys_of_the_format(name: str, fmt: str,
                                                               complete: bool, text: str) -> None:
    schema = SCHEMAS[name]
    emitted = {f.key(fmt) for f in schema.fields if f.key(fmt)}
    assert set(json.loads(text)) - EXTRA_KEYS.get((name, fmt), set()) == emitted


@pytest.mark.parametrize(("name", "fmt", "complete", "text"), EXAMPLES, ids=EXAMPLE_IDS)
def test_an_example_makes_a_frame_of_the_schema_dtypes(name: str, fmt: str, complete: bool,
                                                       text: str) -> None:
    schema = SCHEMAS[name]
    frame = to_frame(schema, [json.loads(text)], fmt)
    assert len(frame) == 1
    assert dict(frame.dtypes) == dtypes(schema)


def test_numbers_sent_for_string_fields_become_strings() -> None:
    text = next(t for name, fmt, _, t in EXAMPLES if (name, fmt) == ("stop_order", "Slim"))
    frame = to_frame(SCHEMAS["stop_order"], [json.loads(text)], "Slim")
    assert frame.loc[0, "id"] == "347499"
    assert frame.loc[0, "exchange_order_id"] == "425242362"


def full_record(schema: Schema) -> dict[str, Any]:
    """One canonical record with a distinct value of the right kind in every field."""
    record: dict[str, Any] = {}
    for i, field in enumerate(schema.fields):
        if field.sub:
            nested = full_record(SCHEMAS[field.sub])
            value: Any = [nested] if (schema.name, field.name) in LIST_CONTAINERS else nested
        else:
            value = {
                "str": f"{field.name}-{i}", "lower": f"{field.name}-{i}", "float": i + 0.25, "int": i, "i8": i, "bool": i % 2 == 0,
                "ts_s": 1_701_068_400 + i, "ts_ms": 1_701_105_939_395 + i,
                "iso": f"2023-11-28T07:52:{i % 60:02d}.0000000Z",
            }[field.kind]
        record[field.name] = value
    return record


def only_in(schema: Schema, record: dict[str, Any], fmt: str) -> dict[str, Any]:
    """``record`` without the fields that ``fmt`` lacks, at every depth."""
    out = {}
    for field in schema.fields:
        if field.key(fmt) and field.name in record:
            value = record[field.name]
            if field.sub:
                sub = SCHEMAS[field.sub]
                value = ([only_in(sub, v, fmt) for v in value] if isinstance(value, list)
                         else only_in(sub, value, fmt))
            out[field.name] = value
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_a_full_record_survives_encode_and_decode(name: str, fmt: str) -> None:
    schema = SCHEMAS[name]
    record = full_record(schema)
    wire = schema.encode(record, fmt)
    assert len(wire) == sum(1 for f in schema.fields if f.key(fmt))
    assert schema.decode(wire, fmt) == only_in(schema, record, fmt)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_no_two_fields_share_a_wire_key(name: str) -> None:
    schema = SCHEMAS[name]
    for fmt in FORMATS:
        keys = [k for f in schema.fields for k in f.keys(fmt)]
        assert len(keys) == len(set(keys)), fmt


def test_the_documented_spelling_conflicts_decode_both_ways() -> None:
    candle = {"t": 1701068400, "c": 287.79, "o": 287.41, "h": 287.9, "l": 287, "v": 174466}
    history = SCHEMAS["history"]
    assert history.encode({"history": [{"time": 1}]}, "Slim") == {"h": [{"t": 1}]}
    assert history.decode({"history": [candle]}, "Slim") == history.decode({"h": [candle]}, "Slim")
    own_trade = SCHEMAS["own_trade"]
    assert own_trade.encode({"order_no": "41129409599"}, "Heavy") == {"orderNo": "41129409599"}
    assert own_trade.decode({"orderno": "41129409599"}, "Heavy") == {"order_no": "41129409599"}


def test_the_full_record_frame_is_the_same_in_every_format() -> None:
    schema = SCHEMAS["quote"]
    record = full_record(schema)
    frames = {fmt: to_frame(schema, [schema.encode(record, fmt)], fmt) for fmt in FORMATS}
    assert frames["Heavy"].loc[0, "ob_time"] == pd.Timestamp(record["ob_time"], unit="ms", tz="UTC")
    slim = frames["Slim"]
    absent_in_slim = [f.name for f in schema.fields if not f.legacy and not f.key("Slim")]
    assert absent_in_slim and slim[absent_in_slim].isna().all(axis=None)
    present = [c for c in slim.columns if c not in absent_in_slim]
    pd.testing.assert_frame_equal(slim[present], frames["Heavy"][present])
