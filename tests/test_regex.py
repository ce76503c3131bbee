"""MongoDB regular expressions on RE2 (node/engine/regex.py): options, PCRE spellings, what is
refused and how, and linear time on patterns that are exponential for a backtracking engine."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.errors import MongoError
from node.engine.matcher import Matcher
from node.engine.regex import compile_regex, translate


def m(pattern: str, text: str, options: str = "") -> bool:
    return compile_regex(pattern, options).search(text)


def refused(pattern: str, options: str = "") -> str:
    with pytest.raises(MongoError) as info:
        compile_regex(pattern, options)
    assert info.value.code == 51091 and info.value.code_name == "Location51091"
    assert info.value.errmsg.startswith("Regular expression is invalid: ")
    return info.value.errmsg


def test_options_i_m_s_u() -> None:
    assert m("^abc", "ABCd", "i") and not m("^abc", "ABCd")
    assert m("été", "ÉTÉ", "i")  # Unicode case folding, as PCRE with UTF
    assert m("^b", "a\nb", "m") and not m("^b", "a\nb")
    assert m("a.b", "a\nb", "s") and not m("a.b", "a\nb")
    assert m("^é$", "é", "u")
    assert m("^a.c$", "A\nC", "ims")


def test_extended_option_drops_whitespace_and_comments_outside_classes() -> None:
    assert m(" a b c # a comment\n d", "abcd", "x")
    assert not m(" a b c # a comment\n d", "abc d", "x")
    assert m("a[ ]b", "a b", "x")  # inside a class a space is a space
    assert m(r"a\ b", "a b", "x")  # so is an escaped one
    assert m(r"a\#b", "a#b", "x")
    assert translate(" a  [ #] # c", extended=True) == "a[ #]"
    assert m(" a b ", "x a b y") and not m(" a b ", "xaby")  # without x: literal spaces


def test_end_anchors_follow_pcre() -> None:
    assert m("x$", "x\n") and not m("x$", "x\n\n")  # $: the end, or before a final newline
    assert m(r"x\Z", "x\n") and m(r"x\Z", "x")
    assert not m(r"x\z", "x\n") and m(r"x\z", "x")
    assert m("x$", "x\ny", "m")  # multiline: before any newline
    assert m("(?m)x$", "x\ny") and m("(?im)X$", "x\ny")  # inline (?m) too
    assert m(r"\Aab", "abc") and not m(r"\Ab", "abc")
    assert m(r"\$", "a$") and m("[$]", "$")  # an escaped or bracketed $ stays literal


def test_pcre_spellings_rre2_can_express() -> None:
    assert m(r"^(?<year>\d{4})-(?P<month>\d\d)", "2011-06")
    assert m(r"a(?#note)b", "ab")
    assert m(r"\Qa.b\E", "a.b") and not m(r"\Qa.b\E", "axb")
    assert m(r"a\Eb", "ab")  # a lone \E means nothing
    assert m(r"[]a]", "]") and m(r"[^]a]", "b") and m(r"[[:alpha:]]+", "abc")
    assert m(r"\p{Greek}", "λ") and m(r"\x{41}", "A")
    assert m("a{,3}", "a{,3}")  # not a quantifier, as in PCRE


@pytest.mark.parametrize("pattern,feature", [
    (r"(a)\1", "backreferences"),
    (r"(?<n>a)\k<n>", "backreferences"),
    (r"(a)\g1", "backreferences"),
    (r"a(?=b)", "lookahead"),
    (r"a(?!b)", "lookahead"),
    (r"(?<=a)b", "lookbehind"),
    (r"(?<!a)b", "lookbehind"),
    (r"a++", "possessive"),
    (r"a*+", "possessive"),
    (r"a{2}+", "possessive"),
    (r"(?>a+)b", "atomic groups"),
    (r"(a|(?R))", "recursion"),
    (r"(a)(?1)", "subroutine"),
    (r"(?(1)a|b)", "conditional"),
    (r"\Ga", r"\G"),
    (r"(?x) a", "x option"),
])
def test_what_re2_cannot_run_is_refused_with_51091(pattern: str, feature: str) -> None:
    assert feature in refused(pattern)


def test_syntax_errors_use_pcre_wording() -> None:
    assert refused("(") == "Regular expression is invalid: missing closing parenthesis"
    assert refused("a)") == "Regular expression is invalid: unmatched closing parenthesis"
    assert refused("[a") == (
        "Regular expression is invalid: missing terminating ] for character class")
    assert refused("*a") == (
        "Regular expression is invalid: quantifier does not follow a repeatable item")
    assert refused("a\\") == "Regular expression is invalid: \\ at end of pattern"


def test_a_pattern_over_the_memory_budget_is_refused_the_same_way_every_time() -> None:
    first = refused(r"[\p{L}\p{N}]{1000}")
    assert "pattern too large" in first
    assert refused(r"[\p{L}\p{N}]{1000}") == first
    assert "1000" in refused("a{1001}")


def test_bad_options_and_nul() -> None:
    with pytest.raises(MongoError) as flag:
        compile_regex("a", "q")
    assert flag.value.code == 51108 and flag.value.errmsg == "invalid flag in regex options: q"
    with pytest.raises(MongoError) as nul:
        compile_regex("a\0b", "")
    assert nul.value.code == 51109


@pytest.mark.parametrize("pattern,text", [
    ("^(a+)+$", "a" * 5000 + "!"),
    ("(x+x+)+y", "x" * 5000),
    ("^(\\w+\\s?)*$", "an ordinary sentence " * 200 + "!"),
    ("(a|aa)+b", "a" * 5000),
    ("(.*a){12}x", "a" * 5000),
])
def test_catastrophic_patterns_run_in_linear_time(pattern: str, text: str) -> None:
    regex = compile_regex(pattern, "")
    start = time.perf_counter()
    assert not regex.search(text)
    assert time.perf_counter() - start < 0.5
    matcher = Matcher({"s": {"$regex": pattern}})
    assert not matcher.matches({"s": [text, text]})


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="abcK.^$\n", max_size=6), st.text(alphabet="abcAB\nKk\u212a.", max_size=12),
       st.sampled_from(["", "i"]))
def test_literal_and_prefix_shortcuts_agree_with_re2(pattern: str, text: str, options: str
                                                     ) -> None:
    """``abc`` and ``^abc`` (and, for ASCII texts, with ``i``) are answered without RE2; the
    answer must be RE2's."""
    try:
        shortcut = compile_regex(pattern, options)
    except MongoError:
        return
    via_re2 = compile_regex(f"(?:{pattern})", options)
    assert shortcut.search(text) == via_re2.search(text)


def test_ucp_makes_d_w_s_unicode() -> None:
    assert not m(r"^\w+$", "héllo") and m(r"(*UCP)^\w+$", "héllo")
    assert not m(r"\d", "٣") and m(r"(*UCP)\d", "٣") and m(r"(*UCP)[\d]", "٣")
    assert not m(r"\s", "\u3000") and m(r"(*UCP)\s", "\u3000")
    assert m(r"(*UCP)\W", "!") and not m(r"(*UCP)\W", "é")
    assert m(r"(*UTF)(*UCP)\w", "é") and m(r"(*NO_START_OPT)a", "a")
    assert "(*CR)" in refused(r"(*CR)a")
    assert "not supported with (*UCP)" in refused(r"(*UCP)[\W]")


def test_pcre2_classes_and_properties() -> None:
    assert m(r"\h", "\u00a0") and m(r"\v", "\u2028") and m(r"\s", "\x0b")
    assert m(r"[\h]", "\t") and not m(r"\H", "\u00a0")
    assert m(r"\p{L}+", "日本") and m(r"\p{lu}", "É") and not m(r"\p{lu}", "é")
    assert m(r"\p{greek}", "λ") and m(r"\p{L&}", "a") and m(r"\P{Xan}", "!")
    assert m(r"[\p{Xwd}]", "_") and m(r"\p{^L}", "1")
    assert "unknown property" in refused(r"\p{Bogus}")


def test_case_folding_is_unicode_and_simple() -> None:
    assert m("é", "É", "i") and m("σ", "Σ", "i") and m("ς", "Σ", "i") and m("k", "\u212a", "i")
    assert not m("straße", "STRASSE", "i")  # simple folding only, as PCRE2
