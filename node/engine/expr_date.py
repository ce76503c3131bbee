"""Date expressions with time zones (Olson names via :mod:`zoneinfo`, or ``+hh:mm`` offsets):
``$year $month $dayOfMonth $hour $minute $second $millisecond $dayOfWeek $dayOfYear $week
$isoWeek $isoWeekYear $isoDayOfWeek $dateToString $dateFromString $dateToParts
$dateFromParts $dateAdd $dateSubtract $dateDiff $dateTrunc``. Dates are naive UTC datetimes
(as the BSON codec returns them); results too."""

from __future__ import annotations

import datetime
import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

from bson import Int64, ObjectId, Timestamp

from node.engine.errors import MongoError
from node.engine.expressions import (
    Fn,
    Scope,
    Vars,
    compile_expression,
    err,
    nullish,
    register,
)
from node.engine.values import is_number, number_value, type_name

UTC = datetime.UTC
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})?$")
_EPOCH = datetime.datetime(1970, 1, 1)


def timezone(tz: Any) -> datetime.tzinfo:
    if nullish(tz):
        return UTC
    if not isinstance(tz, str):
        raise err(40533, f"timezone must evaluate to a string, found {type_name(tz)}")
    m = _OFFSET.match(tz)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return datetime.timezone(sign * datetime.timedelta(hours=int(m.group(2)),
                                                           minutes=int(m.group(3) or 0)))
    if tz in ("UTC", "GMT", "Z"):
        return UTC
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise err(40485, f"unrecognized time zone identifier: \"{tz}\"") from None


def as_date(v: Any, name: str) -> datetime.datetime:
    """A date operand: a date, an ObjectId (its time) or a Timestamp; aware UTC."""
    if isinstance(v, datetime.datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    if isinstance(v, ObjectId):
        return v.generation_time
    if isinstance(v, Timestamp):
        return v.as_datetime()
    raise err(16006, f"can't convert from BSON type {type_name(v)} to Date")


def naive(d: datetime.datetime) -> datetime.datetime:
    return d.astimezone(UTC).replace(tzinfo=None)


def _local(v: Any, tz: Any, name: str) -> datetime.datetime:
    return as_date(v, name).astimezone(timezone(tz))


def _date_arg(arg: Any, name: str) -> tuple[Any, Any]:
    if isinstance(arg, Mapping) and "date" in arg:
        for k in arg:
            if k not in ("date", "timezone"):
                raise err(40535, f"unrecognized option to {name}: \"{k}\"")
        return arg["date"], arg.get("timezone")
    if isinstance(arg, list):
        if len(arg) != 1:
            raise err(40536, f"{name} accepts exactly one argument")
        return arg[0], None
    return arg, None


def _sunday_week(d: datetime.datetime) -> int:
    return int(d.strftime("%U"))


_PARTS = {
    "$year": lambda d: d.year, "$month": lambda d: d.month, "$dayOfMonth": lambda d: d.day,
    "$hour": lambda d: d.hour, "$minute": lambda d: d.minute, "$second": lambda d: d.second,
    "$millisecond": lambda d: d.microsecond // 1000,
    "$dayOfWeek": lambda d: d.isoweekday() % 7 + 1, "$dayOfYear": lambda d: d.timetuple().tm_yday,
    "$week": _sunday_week, "$isoWeek": lambda d: d.isocalendar()[1],
    "$isoWeekYear": lambda d: Int64(d.isocalendar()[0]),
    "$isoDayOfWeek": lambda d: d.isoweekday(),
}


def _part(name: str) -> None:
    f = _PARTS[name]

    @register(name)
    def compile_(arg: Any, scope: Scope) -> Fn:
        date_e, tz_e = _date_arg(arg, name)
        date = compile_expression(date_e, scope)
        tz = compile_expression(tz_e, scope) if tz_e is not None else None

        def run(v: Vars) -> Any:
            d = date(v)
            if nullish(d):
                return None
            t = tz(v) if tz is not None else None
            if tz is not None and nullish(t):
                return None
            return f(_local(d, t, name))
        return run


for _n in _PARTS:
    _part(_n)

_FORMAT = {"%Y": lambda d: f"{d.year:04d}", "%m": lambda d: f"{d.month:02d}",
           "%d": lambda d: f"{d.day:02d}", "%H": lambda d: f"{d.hour:02d}",
           "%M": lambda d: f"{d.minute:02d}", "%S": lambda d: f"{d.second:02d}",
           "%L": lambda d: f"{d.microsecond // 1000:03d}", "%j": lambda d:
           f"{d.timetuple().tm_yday:03d}", "%w": lambda d: str(d.isoweekday() % 7 + 1),
           "%u": lambda d: str(d.isoweekday()), "%U": lambda d: f"{_sunday_week(d):02d}",
           "%V": lambda d: f"{d.isocalendar()[1]:02d}", "%G": lambda d:
           f"{d.isocalendar()[0]:04d}", "%b": lambda d: d.strftime("%b"),
           "%B": lambda d: d.strftime("%B"), "%%": lambda d: "%",
           "%z": lambda d: _offset(d, False), "%Z": lambda d: str(_minutes(d))}
DEFAULT_FORMAT = "%Y-%m-%dT%H:%M:%S.%LZ"


def _minutes(d: datetime.datetime) -> int:
    off = d.utcoffset() or datetime.timedelta(0)
    return int(off.total_seconds() // 60)


def _offset(d: datetime.datetime, colon: bool) -> str:
    m = _minutes(d)
    sign = "+" if m >= 0 else "-"
    m = abs(m)
    return f"{sign}{m // 60:02d}{':' if colon else ''}{m % 60:02d}"


def format_date(d: datetime.datetime, fmt: str) -> str:
    out = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            spec = fmt[i:i + 2]
            f = _FORMAT.get(spec)
            if f is None:
                raise err(18536, f"Invalid format character '{spec}' in format string")
            out.append(f(d))
            i += 2
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


@register("$dateToString")
def _date_to_string(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping):
        raise err(18629, "$dateToString only supports an object as its argument")
    for k in arg:
        if k not in ("date", "format", "timezone", "onNull"):
            raise err(18534, f"Unrecognized argument to $dateToString: {k}")
    if "date" not in arg:
        raise err(18628, "Missing 'date' parameter to $dateToString")
    fns = {k: compile_expression(arg[k], scope) for k in arg}

    def run(v: Vars) -> Any:
        d = fns["date"](v)
        if nullish(d):
            return fns["onNull"](v) if "onNull" in fns else None
        fmt = fns["format"](v) if "format" in fns else DEFAULT_FORMAT
        if nullish(fmt):
            return None
        if not isinstance(fmt, str):
            raise err(18533, f"$dateToString requires that 'format' be a string, found: "
                      f"{type_name(fmt)}")
        tz = fns["timezone"](v) if "timezone" in fns else None
        return format_date(_local(d, tz, "$dateToString"), fmt)
    return run


_TOKENS = {"%Y": r"(?P<Y>\d{4})", "%m": r"(?P<m>\d{1,2})", "%d": r"(?P<d>\d{1,2})",
           "%H": r"(?P<H>\d{1,2})", "%M": r"(?P<M>\d{1,2})", "%S": r"(?P<S>\d{1,2})",
           "%L": r"(?P<L>\d{1,3})", "%z": r"(?P<z>[+-]\d{2}:?\d{2})", "%Z": r"(?P<Z>[+-]?\d+)",
           "%j": r"(?P<j>\d{1,3})", "%%": "%", "%b": r"(?P<b>[A-Za-z]{3})",
           "%B": r"(?P<B>[A-Za-z]+)", "%G": r"(?P<G>\d{4})", "%V": r"(?P<V>\d{1,2})",
           "%u": r"(?P<u>\d)"}
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
                  r"\s*(Z|[+-]\d{2}:?\d{2})?$")


def parse_date(s: str, fmt: str | None, tz: Any) -> datetime.datetime:
    """A date string (ISO 8601, or ``fmt``) in ``tz`` unless it names its own offset."""
    zone = timezone(tz)
    if fmt is None:
        m = _ISO.match(s.strip())
        if not m:
            raise MongoError(241, f"Error parsing date string '{s}'",
                             code_name="ConversionFailure")
        y, mo, d, h, mi, sec, frac, off = m.groups()
        ms = int((frac or "0").ljust(3, "0")[:3])
        parts = {"Y": y, "m": mo, "d": d, "H": h or 0, "M": mi or 0, "S": sec or 0, "L": ms}
        if off:
            zone = timezone("+00:00" if off == "Z" else off)
    else:
        pattern = ""
        i = 0
        while i < len(fmt):
            if fmt[i] == "%":
                tok = _TOKENS.get(fmt[i:i + 2])
                if tok is None:
                    raise err(18536, f"Invalid format character '{fmt[i:i + 2]}' in format "
                              "string")
                pattern += tok
                i += 2
            else:
                pattern += re.escape(fmt[i])
                i += 1
        m = re.fullmatch(pattern, s)
        if not m:
            raise MongoError(241, f"Error parsing date string '{s}'; the string does not match "
                             f"the format '{fmt}'", code_name="ConversionFailure")
        parts = {k: v for k, v in m.groupdict().items() if v is not None}
        if "z" in parts:
            zone = timezone(parts["z"] if ":" in parts["z"] else
                            parts["z"][:3] + ":" + parts["z"][3:])
        if "b" in parts or "B" in parts:
            name = parts.get("b") or parts.get("B")
            parts["m"] = datetime.datetime.strptime(str(name)[:3], "%b").month
        if "L" in parts:
            parts["L"] = int(str(parts["L"]).ljust(3, "0"))
    try:
        local = datetime.datetime(int(parts.get("Y", 1970)), int(parts.get("m", 1)),
                                  int(parts.get("d", 1)), int(parts.get("H", 0)),
                                  int(parts.get("M", 0)), int(parts.get("S", 0)),
                                  int(parts.get("L", 0)) * 1000, tzinfo=zone)
    except ValueError:
        raise MongoError(241, f"Error parsing date string '{s}'",
                         code_name="ConversionFailure") from None
    return naive(local)


@register("$dateFromString")
def _date_from_string(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping):
        raise err(40540, "$dateFromString only supports an object as an argument")
    for k in arg:
        if k not in ("dateString", "format", "timezone", "onError", "onNull"):
            raise err(40541, f"Unrecognized argument to $dateFromString: {k}")
    if "dateString" not in arg:
        raise err(40542, "Missing 'dateString' parameter to $dateFromString")
    fns = {k: compile_expression(arg[k], scope) for k in arg}

    def run(v: Vars) -> Any:
        s = fns["dateString"](v)
        if nullish(s):
            return fns["onNull"](v) if "onNull" in fns else None
        try:
            if not isinstance(s, str):
                raise MongoError(241, f"$dateFromString requires that 'dateString' be a string, "
                                 f"found: {type_name(s)} with value {s!r}",
                                 code_name="ConversionFailure")
            fmt = fns["format"](v) if "format" in fns else None
            tz = fns["timezone"](v) if "timezone" in fns else None
            return parse_date(s, None if nullish(fmt) else fmt, tz)
        except MongoError as e:
            if "onError" in fns and e.code == 241:
                return fns["onError"](v)
            raise
    return run


@register("$dateToParts")
def _date_to_parts(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping) or "date" not in arg:
        raise err(40522, "Missing 'date' parameter to $dateToParts")
    date = compile_expression(arg["date"], scope)
    tz = compile_expression(arg.get("timezone"), scope)
    iso = compile_expression(arg.get("iso8601", False), scope)

    def run(v: Vars) -> Any:
        d = date(v)
        if nullish(d):
            return None
        loc = _local(d, tz(v), "$dateToParts")
        if iso(v):
            y, w, dow = loc.isocalendar()
            return {"isoWeekYear": y, "isoWeek": w, "isoDayOfWeek": dow, "hour": loc.hour,
                    "minute": loc.minute, "second": loc.second,
                    "millisecond": loc.microsecond // 1000}
        return {"year": loc.year, "month": loc.month, "day": loc.day, "hour": loc.hour,
                "minute": loc.minute, "second": loc.second,
                "millisecond": loc.microsecond // 1000}
    return run


@register("$dateFromParts")
def _date_from_parts(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping):
        raise err(40519, "$dateFromParts only supports an object as its argument")
    names = ("year", "month", "day", "hour", "minute", "second", "millisecond", "isoWeekYear",
             "isoWeek", "isoDayOfWeek", "timezone")
    for k in arg:
        if k not in names:
            raise err(40518, f"Unrecognized argument to $dateFromParts: {k}")
    if "year" not in arg and "isoWeekYear" not in arg:
        raise err(40516, "$dateFromParts requires either 'year' or 'isoWeekYear' to be present")
    fns = {k: compile_expression(arg[k], scope) for k in arg}

    def run(v: Vars) -> Any:
        vals = {k: f(v) for k, f in fns.items()}
        if any(nullish(x) for k, x in vals.items() if k != "timezone"):
            return None
        zone = timezone(vals.get("timezone"))

        def n(k: str, d: int) -> int:
            x = vals.get(k, d)
            if not is_number(x):
                raise err(40515, f"'{k}' must evaluate to an integer, found {type_name(x)}")
            return int(number_value(x))
        if "isoWeekYear" in vals:
            base = datetime.datetime.fromisocalendar(n("isoWeekYear", 1), 1, 1)
            base += datetime.timedelta(weeks=n("isoWeek", 1) - 1,
                                       days=n("isoDayOfWeek", 1) - 1)
        else:
            base = datetime.datetime(n("year", 1970), 1, 1)
            base = _add_months(base, n("month", 1) - 1) + datetime.timedelta(days=n("day", 1) - 1)
        base += datetime.timedelta(hours=n("hour", 0), minutes=n("minute", 0),
                                   seconds=n("second", 0), milliseconds=n("millisecond", 0))
        return naive(base.replace(tzinfo=zone))
    return run


# --- arithmetic on dates --------------------------------------------------------------------

_UNITS = ("year", "quarter", "month", "week", "day", "hour", "minute", "second", "millisecond")
_FIXED = {"week": 7 * 86400000, "day": 86400000, "hour": 3600000, "minute": 60000,
          "second": 1000, "millisecond": 1}


def _unit(u: Any, name: str) -> str:
    if not isinstance(u, str) or u not in _UNITS:
        raise err(5439014 if name != "$dateDiff" else 5439013,
                  f"{name} requires 'unit' to be one of {', '.join(_UNITS)}; found {u!r}")
    return u


def _add_months(d: datetime.datetime, months: int) -> datetime.datetime:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    import calendar
    day = min(d.day, calendar.monthrange(year, month)[1])
    return d.replace(year=year, month=month, day=day)


def add_units(d: datetime.datetime, unit: str, amount: int, zone: datetime.tzinfo
              ) -> datetime.datetime:
    """``d`` (aware) plus ``amount`` ``unit``s; calendar units in ``zone``'s local time."""
    if unit in ("year", "quarter", "month"):
        months = amount * {"year": 12, "quarter": 3, "month": 1}[unit]
        loc = d.astimezone(zone).replace(tzinfo=None)
        return _add_months(loc, months).replace(tzinfo=zone).astimezone(UTC)
    if unit in ("day", "week") and zone is not UTC:
        loc = d.astimezone(zone).replace(tzinfo=None)
        loc += datetime.timedelta(days=amount * (7 if unit == "week" else 1))
        return loc.replace(tzinfo=zone).astimezone(UTC)
    return d + datetime.timedelta(milliseconds=amount * _FIXED[unit])


def _date_add(name: str, sign: int) -> None:
    @register(name)
    def compile_(arg: Any, scope: Scope) -> Fn:
        if not isinstance(arg, Mapping):
            raise err(5166400, f"{name} expects an object as its argument")
        for k in arg:
            if k not in ("startDate", "unit", "amount", "timezone"):
                raise err(5166401, f"Unrecognized argument to {name}: {k}")
        for k in ("startDate", "unit", "amount"):
            if k not in arg:
                raise err(5166402, f"{name} requires startDate, unit, and amount to be present")
        fns = {k: compile_expression(arg[k], scope) for k in arg}

        def run(v: Vars) -> Any:
            vals = {k: f(v) for k, f in fns.items()}
            if any(nullish(x) for x in vals.values()):
                return None
            d = vals["startDate"]
            if not isinstance(d, datetime.datetime | ObjectId | Timestamp):
                raise err(5166403, f"{name} requires startDate to be convertible to a date")
            amount = vals["amount"]
            if not is_number(amount) or int(number_value(amount)) != number_value(amount):
                raise err(5166405, f"{name} expects integer amount of time units")
            unit = _unit(vals["unit"], name)
            out = add_units(as_date(d, name), unit, sign * int(number_value(amount)),
                            timezone(vals.get("timezone")))
            return naive(out)
        return run


_date_add("$dateAdd", 1)
_date_add("$dateSubtract", -1)


def _trunc_local(loc: datetime.datetime, unit: str, size: int, start_of_week: int
                 ) -> datetime.datetime:
    """``loc`` (naive local time) down to a multiple of ``size`` ``unit``s (MongoDB's
    reference point: 2000-01-01, a Saturday; weeks start on ``start_of_week``)."""
    ref = datetime.datetime(2000, 1, 1)
    if unit in ("year", "quarter", "month"):
        months = (loc.year - 2000) * 12 + loc.month - 1
        per = {"year": 12, "quarter": 3, "month": 1}[unit] * size
        k = months // per * per
        return datetime.datetime(2000 + k // 12, k % 12 + 1, 1)
    if unit == "week":
        ref = ref + datetime.timedelta(days=(start_of_week - ref.isoweekday()) % 7)
        step = datetime.timedelta(weeks=size)
    else:
        step = datetime.timedelta(milliseconds=_FIXED[unit] * size)
    return ref + (loc - ref) // step * step


_DAYS = {"monday": 1, "mon": 1, "tuesday": 2, "tue": 2, "wednesday": 3, "wed": 3,
         "thursday": 4, "thu": 4, "friday": 5, "fri": 5, "saturday": 6, "sat": 6,
         "sunday": 7, "sun": 7}


def trunc_date(d: Any, unit: str, size: int, zone: datetime.tzinfo, start_of_week: int = 7
               ) -> datetime.datetime:
    loc = as_date(d, "$dateTrunc").astimezone(zone).replace(tzinfo=None)
    out = _trunc_local(loc, unit, size, start_of_week)
    return naive(out.replace(tzinfo=zone))


@register("$dateTrunc")
def _date_trunc(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping):
        raise err(5439007, "$dateTrunc only supports an object as its argument")
    for k in arg:
        if k not in ("date", "unit", "binSize", "timezone", "startOfWeek"):
            raise err(5439008, f"Unrecognized argument to $dateTrunc: {k}. Expected arguments "
                      "are date, unit, and optionally, binSize, timezone, startOfWeek")
    for k in ("date", "unit"):
        if k not in arg:
            raise err(5439009 if k == "date" else 5439010,
                      f"Missing '{k}' parameter to $dateTrunc")
    fns = {k: compile_expression(arg[k], scope) for k in arg}

    def run(v: Vars) -> Any:
        vals = {k: f(v) for k, f in fns.items()}
        if any(nullish(x) for x in vals.values()):
            return None
        unit = _unit(vals["unit"], "$dateTrunc")
        size = vals.get("binSize", 1)
        if not is_number(size) or int(number_value(size)) != number_value(size) or \
                number_value(size) <= 0:
            raise err(5439017, "$dateTrunc requires 'binSize' to be a positive 64-bit integer")
        sow = str(vals.get("startOfWeek", "sunday")).lower()
        if sow not in _DAYS:
            raise err(5439016, f"$dateTrunc parameter 'startOfWeek' value cannot be recognized "
                      f"as a day of a week: {sow}")
        d = vals["date"]
        if not isinstance(d, datetime.datetime | ObjectId | Timestamp):
            raise err(5439012, f"$dateTrunc requires 'date' to be a date, but got "
                      f"{type_name(d)}")
        return trunc_date(d, unit, int(number_value(size)), timezone(vals.get("timezone")),
                          _DAYS[sow])
    return run


@register("$dateDiff")
def _date_diff(arg: Any, scope: Scope) -> Fn:
    if not isinstance(arg, Mapping):
        raise err(5439001, "$dateDiff only supports an object as its argument")
    for k in arg:
        if k not in ("startDate", "endDate", "unit", "timezone", "startOfWeek"):
            raise err(5439002, f"Unrecognized argument to $dateDiff: {k}")
    for k in ("startDate", "endDate", "unit"):
        if k not in arg:
            raise err(5439003 + ("startDate", "endDate", "unit").index(k),
                      f"Missing '{k}' parameter to $dateDiff")
    fns = {k: compile_expression(arg[k], scope) for k in arg}

    def run(v: Vars) -> Any:
        vals = {k: f(v) for k, f in fns.items()}
        if any(nullish(x) for x in vals.values()):
            return None
        unit = _unit(vals["unit"], "$dateDiff")
        zone = timezone(vals.get("timezone"))
        sow = _DAYS.get(str(vals.get("startOfWeek", "sunday")).lower(), 7)
        a = _trunc_local(as_date(vals["startDate"], "$dateDiff").astimezone(zone).replace(
            tzinfo=None), unit if unit != "millisecond" else "millisecond", 1, sow)
        b = _trunc_local(as_date(vals["endDate"], "$dateDiff").astimezone(zone).replace(
            tzinfo=None), unit, 1, sow)
        if unit in ("year", "quarter", "month"):
            months = (b.year - a.year) * 12 + b.month - a.month
            return Int64(months // {"year": 12, "quarter": 3, "month": 1}[unit])
        ms = (b - a) // datetime.timedelta(milliseconds=1)
        per = 7 * 86400000 if unit == "week" else _FIXED[unit]
        return Int64(ms // per)
    return run


del _EPOCH
