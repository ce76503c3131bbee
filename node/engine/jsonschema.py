"""``$jsonSchema`` (query operator and collection validator): MongoDB's JSON Schema draft 4
subset with ``bsonType``. ``compile_schema(schema)`` checks the schema once (BadValue /
FailedToParse for unknown or malformed keywords) and returns a :class:`Schema` whose
``valid(doc)`` answers and ``errors(doc)`` explains (the ``schemaRulesNotSatisfied`` details
of a 121 DocumentValidationFailure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from node.engine.errors import MongoError
from node.engine.regex import compile_regex
from node.engine.values import (
    MISSING,
    TYPE_ALIASES,
    bson_type_code,
    hash_key,
    is_number,
    number_value,
    values_equal,
)

_JSON_TYPES = {"object": {3}, "array": {4}, "number": {1, 16, 18, 19}, "boolean": {8},
               "string": {2}, "null": {10}}
_KEYWORDS = frozenset({
    "bsonType", "type", "required", "properties", "additionalProperties", "patternProperties",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    "pattern", "enum", "items", "additionalItems", "minItems", "maxItems", "uniqueItems",
    "minProperties", "maxProperties", "allOf", "anyOf", "oneOf", "not", "description", "title",
    "multipleOf", "dependencies"})

Check = Callable[[Any], str | None]


def _bad(msg: str) -> MongoError:
    return MongoError(2, msg, code_name="BadValue")


def _types(name: str, spec: Any) -> set[int]:
    items = spec if isinstance(spec, list) else [spec]
    out: set[int] = set()
    for t in items:
        if not isinstance(t, str):
            raise MongoError(14, f"$jsonSchema keyword '{name}' must be a string or an array of "
                             "strings", code_name="TypeMismatch")
        if name == "type":
            if t == "integer":
                raise _bad("$jsonSchema type 'integer' is not currently supported.")
            if t not in _JSON_TYPES:
                raise _bad(f"Unknown type name alias: {t}")
            out |= _JSON_TYPES[t]
        elif t == "number":
            out |= {1, 16, 18, 19}
        elif t in TYPE_ALIASES:
            out.add(TYPE_ALIASES[t])
        else:
            raise _bad(f"Unknown type name alias: {t}")
    return out


def _num(name: str, v: Any) -> Any:
    if not is_number(v):
        raise MongoError(14, f"$jsonSchema keyword '{name}' must be a number",
                         code_name="TypeMismatch")
    return number_value(v)


class Schema:
    def __init__(self, checks: list[tuple[str, Check]]) -> None:
        self.checks = checks

    def errors(self, value: Any) -> list[str]:
        out = []
        for _, check in self.checks:
            e = check(value)
            if e is not None:
                out.append(e)
        return out

    def valid(self, value: Any) -> bool:
        return all(check(value) is None for _, check in self.checks)


def compile_schema(schema: Any, top: bool = True) -> Schema:
    if not isinstance(schema, Mapping):
        raise MongoError(14, "$jsonSchema must be an object", code_name="TypeMismatch")
    checks: list[tuple[str, Check]] = []
    for k in schema:
        if k not in _KEYWORDS:
            raise MongoError(9, f"Unknown $jsonSchema keyword: {k}", code_name="FailedToParse")
    if "type" in schema and "bsonType" in schema:
        raise MongoError(9, "Cannot specify both $jsonSchema keywords 'type' and 'bsonType'",
                         code_name="FailedToParse")
    for name in ("type", "bsonType"):
        if name in schema:
            codes = _types(name, schema[name])
            if top and 3 not in codes:
                pass

            def type_check(v: Any, codes: set[int] = codes, name: str = name) -> str | None:
                if v is MISSING:
                    return None
                return None if bson_type_code(v) in codes else f"{name} mismatch"
            checks.append((name, type_check))
    for name, test in (("minimum", lambda v, b: v >= b), ("maximum", lambda v, b: v <= b)):
        if name in schema:
            bound = _num(name, schema[name])
            exclusive = bool(schema.get("exclusive" + name[0].upper() + name[1:], False))

            def num_check(v: Any, bound: Any = bound, test: Any = test, ex: bool = exclusive,
                          name: str = name) -> str | None:
                if not is_number(v):
                    return None
                x = number_value(v)
                ok = test(x, bound) and not (ex and x == bound)
                return None if ok else f"{name} violated"
            checks.append((name, num_check))
    if "multipleOf" in schema:
        m = _num("multipleOf", schema["multipleOf"])
        if m <= 0:
            raise _bad("$jsonSchema keyword 'multipleOf' must have a positive value")
        checks.append(("multipleOf", lambda v: None if not is_number(v) or
                       number_value(v) % m == 0 else "multipleOf violated"))
    for name, lo in (("minLength", True), ("maxLength", False)):
        if name in schema:
            n = int(_num(name, schema[name]))
            checks.append((name, lambda v, n=n, lo=lo, name=name: None if not isinstance(v, str)
                           or (len(v) >= n if lo else len(v) <= n) else f"{name} violated"))
    if "pattern" in schema:
        if not isinstance(schema["pattern"], str):
            raise MongoError(14, "$jsonSchema keyword 'pattern' must be a string",
                             code_name="TypeMismatch")
        rx = compile_regex(schema["pattern"], "")
        checks.append(("pattern", lambda v: None if not isinstance(v, str) or rx.search(v)
                       else "pattern violated"))
    if "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not values:
            raise _bad("$jsonSchema keyword 'enum' must be a non-empty array")
        checks.append(("enum", lambda v: None if v is MISSING or any(
            values_equal(v, e) for e in values) else "enum violated"))
    for name, lo in (("minItems", True), ("maxItems", False)):
        if name in schema:
            n = int(_num(name, schema[name]))
            checks.append((name, lambda v, n=n, lo=lo, name=name: None if not isinstance(v, list)
                           or (len(v) >= n if lo else len(v) <= n) else f"{name} violated"))
    if schema.get("uniqueItems"):
        checks.append(("uniqueItems", lambda v: None if not isinstance(v, list) or len(
            {hash_key(e) for e in v}) == len(v) else "uniqueItems violated"))
    if "items" in schema:
        items = schema["items"]
        if isinstance(items, list):
            subs = [compile_schema(s, False) for s in items]
            extra = schema.get("additionalItems", True)
            extra_s = compile_schema(extra, False) if isinstance(extra, Mapping) else None

            def tuple_check(v: Any) -> str | None:
                if not isinstance(v, list):
                    return None
                for e, s in zip(v, subs, strict=False):
                    if not s.valid(e):
                        return "items violated"
                rest = v[len(subs):]
                if rest and extra is False:
                    return "additionalItems violated"
                if extra_s is not None and not all(extra_s.valid(e) for e in rest):
                    return "additionalItems violated"
                return None
            checks.append(("items", tuple_check))
        else:
            sub = compile_schema(items, False)
            checks.append(("items", lambda v: None if not isinstance(v, list) or all(
                sub.valid(e) for e in v) else "items violated"))
    if "required" in schema:
        req = schema["required"]
        if not isinstance(req, list) or not req or not all(isinstance(r, str) for r in req):
            raise _bad("$jsonSchema keyword 'required' must be a non-empty array of strings")
        checks.append(("required", lambda v: None if not isinstance(v, Mapping) or all(
            r in v for r in req) else "required properties missing: " + ", ".join(
            r for r in req if r not in v)))
    for name, lo in (("minProperties", True), ("maxProperties", False)):
        if name in schema:
            n = int(_num(name, schema[name]))
            checks.append((name, lambda v, n=n, lo=lo, name=name: None
                           if not isinstance(v, Mapping) or (len(v) >= n if lo else len(v) <= n)
                           else f"{name} violated"))
    props = schema.get("properties", {})
    if not isinstance(props, Mapping):
        raise MongoError(14, "$jsonSchema keyword 'properties' must be an object",
                         code_name="TypeMismatch")
    prop_schemas = {k: compile_schema(s, False) for k, s in props.items()}
    patterns = [(compile_regex(p, ""), compile_schema(s, False))
                for p, s in schema.get("patternProperties", {}).items()]
    additional = schema.get("additionalProperties", True)
    add_schema = compile_schema(additional, False) if isinstance(additional, Mapping) else None
    if prop_schemas or patterns or additional is not True:
        def props_check(v: Any) -> str | None:
            if not isinstance(v, Mapping):
                return None
            for k, value in v.items():
                matched = False
                s = prop_schemas.get(k)
                if s is not None:
                    matched = True
                    if not s.valid(value):
                        return f"property '{k}' failed: " + "; ".join(s.errors(value))
                for rx, ps in patterns:
                    if rx.search(k):
                        matched = True
                        if not ps.valid(value):
                            return f"property '{k}' failed patternProperties"
                if not matched:
                    if additional is False and not (top and k == "_id"):
                        return f"additional property '{k}' not allowed"
                    if add_schema is not None and not add_schema.valid(value):
                        return f"additional property '{k}' failed"
            return None
        checks.append(("properties", props_check))
    for name in ("allOf", "anyOf", "oneOf"):
        if name in schema:
            subs = schema[name]
            if not isinstance(subs, list) or not subs:
                raise _bad(f"$jsonSchema keyword '{name}' must be a non-empty array")
            compiled = [compile_schema(s, False) for s in subs]

            def logic(v: Any, compiled: list[Schema] = compiled, name: str = name
                      ) -> str | None:
                n = sum(1 for s in compiled if s.valid(v))
                ok = (n == len(compiled) if name == "allOf" else n >= 1 if name == "anyOf"
                      else n == 1)
                return None if ok else f"{name} violated"
            checks.append((name, logic))
    if "not" in schema:
        neg = compile_schema(schema["not"], False)
        checks.append(("not", lambda v: "not violated" if neg.valid(v) else None))
    return Schema(checks)
