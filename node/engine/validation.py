"""Collection validators: ``validator`` (a query, ``$jsonSchema`` and ``$expr`` included),
``validationLevel`` (``off``/``strict``/``moderate``) and ``validationAction``
(``error``/``warn``), kept in the collection's catalog options and checked by the engine on
every insert and update where the write applies (on every member, as the log entry applies).

A failing document raises 121 DocumentValidationFailure with ``errInfo`` (the failing
document's ``_id`` and, for ``$jsonSchema``, the rules not satisfied). ``moderate`` skips
updates of documents that did not satisfy the validator before; ``warn`` logs instead of
failing. A write carrying ``bypassDocumentValidation`` sets :data:`BYPASS` while its entry
applies. Chunk migrations store records without validation (the donor validated them).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping
from typing import Any

from node.engine.errors import DOCUMENT_VALIDATION_FAILURE, MongoError

log = logging.getLogger("helogale.validation")

BYPASS: contextvars.ContextVar[bool] = contextvars.ContextVar("bypass_validation",
                                                              default=False)
LEVELS = ("off", "strict", "moderate")
ACTIONS = ("error", "warn")
OPTION_NAMES = ("validator", "validationLevel", "validationAction")


class Validator:
    def __init__(self, options: Mapping[str, Any]) -> None:
        from node.engine.matcher import Matcher
        spec = options.get("validator") or {}
        self.spec = spec
        self.level = options.get("validationLevel", "strict")
        self.action = options.get("validationAction", "error")
        self.matcher = Matcher(spec, allow_rand=False)
        self.schema = None
        if isinstance(spec, Mapping) and "$jsonSchema" in spec:
            from node.engine.jsonschema import compile_schema
            self.schema = compile_schema(spec["$jsonSchema"])

    def check(self, ns: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> None:
        if self.level == "off" or not self.spec or BYPASS.get():
            return
        if self.matcher.matches(new):
            return
        if self.level == "moderate" and old is not None and not self.matcher.matches(old):
            return
        details: dict[str, Any] = {"failingDocumentId": new.get("_id")}
        if self.schema is not None:
            details["details"] = {"operatorName": "$jsonSchema",
                                  "schemaRulesNotSatisfied": self.schema.errors(new)}
        if self.action == "warn":
            log.warning("Document would fail validation in %s: %s", ns, details)
            return
        raise MongoError(DOCUMENT_VALIDATION_FAILURE, "Document failed validation",
                         code_name="DocumentValidationFailure", details={"errInfo": details})


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The validation options of a ``create``/``collMod``, checked (BadValue, FailedToParse
    from compiling the validator)."""
    out: dict[str, Any] = {}
    if "validator" in options:
        spec = options["validator"]
        if not isinstance(spec, Mapping):
            raise MongoError(14, "'validator' option must be an object",
                             code_name="TypeMismatch")
        for bad in ("$near", "$nearSphere", "$text", "$where"):
            if bad in repr(spec):
                raise MongoError(72, f"{bad} is not allowed in collection validators",
                                 code_name="InvalidOptions")
        out["validator"] = dict(spec)
    if "validationLevel" in options:
        if options["validationLevel"] not in LEVELS:
            raise MongoError(2, "Enumeration value '{}' for field 'validationLevel' is not a "
                             "valid value.".format(options["validationLevel"]),
                             code_name="BadValue")
        out["validationLevel"] = options["validationLevel"]
    if "validationAction" in options:
        if options["validationAction"] not in ACTIONS:
            raise MongoError(2, "Enumeration value '{}' for field 'validationAction' is not a "
                             "valid value.".format(options["validationAction"]),
                             code_name="BadValue")
        out["validationAction"] = options["validationAction"]
    Validator(out)
    return out


_CACHE: dict[bytes, Validator | None] = {}


def validator_for(options: Mapping[str, Any] | None) -> Validator | None:
    """The compiled validator of a collection's options (cached by their bytes)."""
    if not options or "validator" not in options:
        return None
    import bson
    key = bson.encode({k: options[k] for k in OPTION_NAMES if k in options})
    found = _CACHE.get(key, False)
    if found is False:
        if len(_CACHE) > 256:
            _CACHE.clear()
        found = _CACHE[key] = Validator(options)
    return found  # type: ignore[return-value]
