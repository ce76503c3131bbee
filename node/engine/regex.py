"""MongoDB regular expressions (``$regex``, regex values in queries) on RE2, in linear time.

MongoDB runs PCRE, a backtracking engine: ``{$regex: "^(a+)+$"}`` over ``"a" * 40 + "!"`` takes
exponential time. Helogale evaluates filters inside the Raft apply path of every member, so such a
pattern would freeze the whole replica set; here every pattern runs on RE2 (``google-re2``),
whose matching time is linear in the text. See docs/regex.md for the choice and the numbers.

:func:`compile_regex` turns a pattern and MongoDB's option letters into a :class:`Regex2`:

* options ``i`` ``m`` ``s`` become RE2's inline flags, ``x`` (extended) is applied here as PCRE
  does (unescaped whitespace and ``#`` comments outside character classes are dropped), ``u``
  changes nothing (patterns are always UTF-8);
* PCRE spellings RE2 lacks are rewritten: ``\\Z`` and a non-multiline ``$`` (the end, or before
  a final newline) become ``(?:\\n?\\z)``, ``(?#...)`` comments are dropped, a stray ``\\E`` too;
  ``\\h``/``\\v`` and PCRE2's ``\\s`` become their classes, PCRE2's loose and special Unicode
  property names (``\\p{lu}``, ``\\p{Xan}``) RE2's; a leading ``(*UCP)`` makes ``\\d \\w \\s``
  Unicode classes, and PCRE2's other harmless start-of-pattern settings are accepted;
* what RE2 cannot run -- backreferences, lookahead and lookbehind, atomic groups, possessive
  quantifiers, recursion, conditionals, ``\\G`` and the other PCRE-only escapes -- and a pattern
  whose compiled program exceeds :data:`MAX_MEM` are refused with MongoDB's error for an invalid
  regular expression (code 51091, ``Regular expression is invalid: ...``).

Compilation depends only on the pattern, the options and the RE2 build, so every member accepts
or refuses a pattern identically, and matching gives the same answer everywhere (when RE2's DFA
cache fills up it falls back to its NFA, which is slower but exact).
"""

from __future__ import annotations

import re as std_re  # only for the fixed, linear pattern below
from typing import Final

import re2
from re2 import _re2

from node.engine.errors import MongoError, location

MAX_MEM: Final = 8 << 20
"""Memory budget of one compiled pattern (RE2's ``max_mem``, fixed so it never varies by build
default): a pattern whose program does not fit is refused, never truncated."""

INVALID_REGEX: Final = 51091
INVALID_OPTION: Final = 51108
VALID_OPTIONS: Final = frozenset("imsxu")

_OPTIONS = re2.Options()
_OPTIONS.max_mem = MAX_MEM
_OPTIONS.log_errors = False
_OPTIONS.never_capture = True  # matching only answers yes/no: no submatches to track
_OPTIONS.encoding = re2.Options.Encoding.UTF8
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_END_OR_FINAL_NEWLINE = "(?:\\n?\\z)"
_WHITESPACE = frozenset(" \t\n\r\f\v")
_META = frozenset(".^$*+?()[]{}|\\")
_INLINE_MULTILINE = std_re.compile(r"\(\?[a-zA-Z]*m")  # (?m) or (?im:...) inside the pattern


class Regex2:
    """A compiled pattern: ``search(text)`` says whether the pattern matches somewhere in it.

    Patterns that are a plain literal (``abc``) or an anchored literal prefix (``^abc``) are
    answered with ``in`` / ``str.startswith`` (the same answer, without RE2's per-call cost);
    with the ``i`` option too, when pattern and text are ASCII (where case folding is
    lowercasing)."""

    __slots__ = ("_anchored", "_folded", "_literal", "_match", "pattern")

    def __init__(self, pattern: str, flags: str, body: str) -> None:
        self.pattern = pattern
        self._literal: str | None = None  # answered without RE2, case-sensitively
        self._folded: str | None = None  # answered without RE2 for ASCII texts (flag i)
        self._anchored = False
        self._match = None
        plain = body == pattern and flags in ("", "i")
        if plain and not _META.intersection(pattern):
            literal = pattern
        elif plain and len(pattern) > 1 and pattern[0] == "^" and not _META.intersection(
                pattern[1:]):
            literal, self._anchored = pattern[1:], True
        else:
            literal = None
        if literal is not None and not flags:
            self._literal = literal
            return
        if literal is not None and literal.isascii():
            self._folded = literal.lower()
        source = f"(?{flags}){body}" if flags else body
        compiled = _re2.RE2(source.encode("utf-8", "surrogatepass"), _OPTIONS)
        if not compiled.ok():
            raise invalid_regex(_explain(compiled.error().decode("utf-8", "replace")))
        self._match = compiled.Match

    def search(self, text: str) -> bool:
        literal = self._literal
        if literal is not None:
            return text.startswith(literal) if self._anchored else literal in text
        folded = self._folded
        if folded is not None and text.isascii():
            lowered = text.lower()
            return lowered.startswith(folded) if self._anchored else folded in lowered
        data = text.encode("utf-8", "surrogatepass")
        assert self._match is not None
        return self._match(_UNANCHORED, data, 0, len(data))[0][0] >= 0

    def __repr__(self) -> str:
        return f"Regex2({self.pattern!r})"


def invalid_regex(reason: str) -> MongoError:
    """MongoDB's error for a pattern it cannot compile (code 51091)."""
    return location(INVALID_REGEX, f"Regular expression is invalid: {reason}")


def compile_regex(pattern: str, options: str) -> Regex2:
    """The compiled form of a MongoDB ``$regex`` with ``$options`` (errors: 51108 for an
    unknown option letter, 51109 for an embedded NUL, 51091 for a pattern RE2 cannot run;
    only plain literals, which RE2 always accepts, skip RE2's compiler)."""
    flags, body = _prepare(pattern, options)
    return Regex2(pattern, flags, body)


def _prepare(pattern: str, options: str) -> tuple[str, str]:
    """The RE2 inline flags and the translated body of ``pattern`` with ``options``."""
    for letter in options:
        if letter not in VALID_OPTIONS:
            raise location(INVALID_OPTION, f"invalid flag in regex options: {letter}")
    if "\0" in pattern:
        raise location(51109, "Regular expression cannot contain an embedded null byte")
    verbs, rest = _leading_verbs(pattern)
    if rest.startswith("(*"):
        end = rest.find(")")
        raise invalid_regex("start-of-pattern settings and backtracking control verbs other "
                            f"than {', '.join(f'(*{v})' for v in sorted(ACCEPTED_VERBS))} are "
                            f"not supported: {rest[:end + 1] if end > 0 else rest}")
    flags = "".join(f for f in "ims" if f in options)
    multiline = "m" in options or _INLINE_MULTILINE.search(rest) is not None
    return flags, translate(rest, multiline=multiline, extended="x" in options,
                            ucp="UCP" in verbs)


_VERB = std_re.compile(r"\(\*([A-Z_]+)(?:=\d+)?\)")
ACCEPTED_VERBS: Final = frozenset({"UCP", "UTF", "NO_AUTO_POSSESS", "NO_START_OPT",
                                   "NO_DOTSTAR_ANCHOR", "NO_JIT", "LIMIT_MATCH", "LIMIT_HEAP",
                                   "LIMIT_DEPTH"})
"""PCRE2's start-of-pattern settings accepted: ``(*UCP)`` (Unicode ``\\d \\w \\s``),
``(*UTF)`` (always on), and those that only tune PCRE2's matcher. Newline conventions
(``(*CR)``...) change what ``^``/``$`` see and stay refused, like every other verb."""


def _leading_verbs(pattern: str) -> tuple[set[str], str]:
    """The accepted ``(*VERB)`` settings at the start of ``pattern``, and what follows them."""
    verbs: set[str] = set()
    pos = 0
    while (m := _VERB.match(pattern, pos)) is not None and m.group(1) in ACCEPTED_VERBS:
        verbs.add(m.group(1))
        pos = m.end()
    return verbs, pattern[pos:]


def translate(pattern: str, *, multiline: bool = False, extended: bool = False,
              ucp: bool = False) -> str:
    """Rewrite PCRE syntax into RE2's (see the module docstring); what RE2 does not know is left
    for RE2 to refuse. One pass, tracking escapes, ``\\Q...\\E`` and character classes.
    ``ucp``: ``(*UCP)`` was given, so ``\\d \\w \\s`` are Unicode classes."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                out.append(ch)  # a trailing backslash: RE2 refuses it
                i += 1
                continue
            nxt = pattern[i + 1]
            if nxt == "Q":  # \Q...\E: literal text, copied as is (RE2 knows it)
                end = pattern.find("\\E", i + 2)
                end = n if end < 0 else end + 2
                out.append(pattern[i:end])
                i = end
                continue
            if nxt == "Z":
                out.append(_END_OR_FINAL_NEWLINE)
            elif nxt in "pP":
                end = _property_end(pattern, i)
                out.append(_property(pattern[i:end], in_class=False))
                i = end
                continue
            elif nxt != "E":  # a \E without \Q means nothing to PCRE
                out.append(_escape(nxt, ucp, in_class=False) or pattern[i : i + 2])
            i += 2
            continue
        if ch == "[":
            end = _class_end(pattern, i)
            out.append(_translate_class(pattern[i:end], ucp))
            i = end
            continue
        if ch == "(" and pattern.startswith("(?#", i):
            end = pattern.find(")", i)
            i = n if end < 0 else end + 1
            continue
        if ch == "$" and not multiline:
            out.append(_END_OR_FINAL_NEWLINE)
            i += 1
            continue
        if extended:
            if ch in _WHITESPACE:
                i += 1
                continue
            if ch == "#":
                end = pattern.find("\n", i)
                i = n if end < 0 else end + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


_H_SPACE = "\\t \\x{A0}\\x{1680}\\x{180E}\\x{2000}-\\x{200A}\\x{202F}\\x{205F}\\x{3000}"
_V_SPACE = "\\n\\x0B\\f\\r\\x{85}\\x{2028}\\x{2029}"
_UCP_SPACE = "\\t\\n\\x0B\\f\\r\\p{Z}\\x{85}"
_UCP_WORD = "\\p{L}\\p{N}_"
# escape letter -> the members of its class, as PCRE2 defines it (RE2 lacks \h, its \v is
# only the vertical tab, its \s lacks the vertical tab); with (*UCP) also \d \w \s, which
# RE2 keeps ASCII
_CLASS_ESCAPES = {"h": _H_SPACE, "v": _V_SPACE, "s": "\\t\\n\\x0B\\f\\r "}
_UCP_ESCAPES = {"d": "\\p{Nd}", "w": _UCP_WORD, "s": _UCP_SPACE}


def _escape(letter: str, ucp: bool, *, in_class: bool) -> str | None:
    """RE2's spelling of PCRE's ``\\<letter>`` class escapes that RE2 lacks or reads
    differently; None when RE2 reads it as PCRE does."""
    members = _UCP_ESCAPES.get(letter.lower()) if ucp else None
    if members is None:
        members = _CLASS_ESCAPES.get(letter.lower())
    if members is None:
        return None
    negated = letter.isupper()
    if in_class:
        if negated:  # RE2 has no way to subtract a set inside a class
            raise invalid_regex(f"\\{letter} inside a character class is not supported"
                                + (" with (*UCP)" if letter.lower() in _UCP_ESCAPES else ""))
        return members
    return f"[^{members}]" if negated else f"[{members}]"


_PROPERTY_ALIASES = {
    "L&": "\\p{Lu}\\p{Ll}\\p{Lt}", "LC": "\\p{Lu}\\p{Ll}\\p{Lt}",
    "Xan": "\\p{L}\\p{N}", "Xwd": "\\p{L}\\p{N}_",
    "Xsp": _UCP_SPACE, "Xps": _UCP_SPACE,
}
_CATEGORIES = {c.lower(): c for c in [
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn",
    "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk",
    "Sm", "So", "Z", "Zl", "Zp", "Zs", "Any"]}


def _property_end(pattern: str, start: int) -> int:
    """Just past ``\\p{...}`` / ``\\pL`` starting at ``start``."""
    if start + 2 < len(pattern) and pattern[start + 2] == "{":
        end = pattern.find("}", start + 3)
        return len(pattern) if end < 0 else end + 1
    return min(start + 3, len(pattern))


def _property(text: str, *, in_class: bool) -> str:
    """A PCRE2 Unicode property escape in RE2's spelling: PCRE2's loose names (``\\p{lu}``,
    ``\\p{greek}``) and its special properties (``L&``, ``Xan``, ``Xwd``, ``Xsp``, ``Xps``)."""
    if len(text) < 4 or text[2] != "{" or not text.endswith("}"):
        return text
    negated = text[1] == "P"
    name = text[3:-1].replace(" ", "").replace("-", "")
    if name.startswith("^"):
        negated, name = not negated, name[1:]
    alias = _PROPERTY_ALIASES.get(name)
    if alias is not None:
        if in_class:
            if negated:
                raise invalid_regex(f"{text} inside a character class is not supported")
            return alias
        return f"[^{alias}]" if negated else f"[{alias}]"
    canonical = _CATEGORIES.get(name.lower()) or "_".join(
        w[:1].upper() + w[1:].lower() for w in name.split("_"))
    return f"\\{'P' if negated else 'p'}{{{canonical}}}"


def _translate_class(cls: str, ucp: bool) -> str:
    """A character class with PCRE's escapes that RE2 lacks spelled as RE2's members."""
    if "\\" not in cls:
        return cls
    out: list[str] = []
    i, n = 0, len(cls)
    while i < n:
        ch = cls[i]
        if ch == "\\" and i + 1 < n:
            nxt = cls[i + 1]
            if nxt in "pP":
                end = _property_end(cls, i)
                out.append(_property(cls[i:end], in_class=True))
                i = end
                continue
            out.append(_escape(nxt, ucp, in_class=True) or cls[i : i + 2])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """The index just past the character class opening at ``start`` (the pattern's end when it
    is unterminated: RE2 then reports the missing ``]``). A ``]`` right after ``[`` or ``[^``
    is literal, as are escaped characters; ``[:name:]`` is a POSIX class inside it."""
    i, n = start + 1, len(pattern)
    if i < n and pattern[i] == "^":
        i += 1
    if i < n and pattern[i] == "]":
        i += 1
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[" and pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            if end >= 0:
                i = end + 2
                continue
        if ch == "]":
            return i + 1
        i += 1
    return n


# RE2's complaint -> the reason given to the user (PCRE2's wording where MongoDB has one)
_REFUSED_OPERATORS = (
    ("(?=", "lookahead assertions are not supported"),
    ("(?!", "lookahead assertions are not supported"),
    ("(?<=", "lookbehind assertions are not supported"),
    ("(?<!", "lookbehind assertions are not supported"),
    ("(?>", "atomic groups are not supported"),
    ("(?(", "conditional groups are not supported"),
    ("(?|", "branch reset groups are not supported"),
    ("(?R", "recursion is not supported"),
    ("(?&", "subroutine calls are not supported"),
    ("(?P>", "subroutine calls are not supported"),
    ("(?x", "the x flag inside the pattern is not supported (use the x option)"),
)


def _explain(error: str) -> str:
    """A user-facing reason for RE2's error text."""
    kind, _, arg = error.partition(": ")
    if kind == "invalid perl operator":
        for prefix, reason in _REFUSED_OPERATORS:
            if arg.startswith(prefix):
                return f"{reason}: {arg}"
        if len(arg) > 2 and (arg[2].isdigit() or arg[2] in "+-"):
            return f"subroutine calls are not supported: {arg}"
        return f"unsupported group syntax: {arg}"
    if kind == "invalid escape sequence":
        letter = arg[1:2]
        if letter.isdigit() or letter in ("k", "g"):
            return f"backreferences are not supported: {arg}"
        return f"escape sequence not supported: {arg}"
    if kind == "bad repetition operator" and arg.endswith("+") and len(arg) > 1:
        return f"possessive quantifiers are not supported: {arg}"
    if kind == "missing )":
        return "missing closing parenthesis"
    if kind == "unexpected )":
        return "unmatched closing parenthesis"
    if kind == "missing ]":
        return "missing terminating ] for character class"
    if kind == "no argument for repetition operator":
        return "quantifier does not follow a repeatable item"
    if kind == "trailing \\":
        return "\\ at end of pattern"
    if kind == "invalid character class range" and arg[:2] in ("\\p", "\\P"):
        return f"unknown property name after \\P or \\p: {arg}"
    if kind == "invalid repetition size":
        return f"invalid or too large repetition count (at most 1000): {arg}"
    if kind == "pattern too large - compile failed":
        return f"pattern too large: its compiled program exceeds {MAX_MEM >> 20} MiB"
    return error


__all__ = ["INVALID_REGEX", "MAX_MEM", "Regex2", "compile_regex", "invalid_regex", "translate"]


_CAPTURE_OPTIONS = re2.Options()
_CAPTURE_OPTIONS.max_mem = MAX_MEM
_CAPTURE_OPTIONS.log_errors = False
_CAPTURE_OPTIONS.encoding = re2.Options.Encoding.UTF8


def compile_capturing(pattern: str, options: str) -> re2._Regexp:
    """The pattern with submatches (``$regexFind``/``$regexFindAll``): the same checks and
    PCRE translation as :func:`compile_regex`, compiled by RE2 keeping capture groups."""
    compile_regex(pattern, options)  # the same refusals, with MongoDB's messages
    flags, body = _prepare(pattern, options)
    return re2.compile(f"(?{flags}){body}" if flags else body, _CAPTURE_OPTIONS)
