"""The history checkers accept correct histories and catch known anomalies."""

from __future__ import annotations

import math

from chaos.checkers.collections import check_append, check_counter, check_set
from chaos.checkers.linearizability import check_register, check_register_ops
from chaos.history import History, Operation, pair


def op(f: str, value: object, start: float, end: float, type_: str = "ok", key: object = "k",
       process: int = 0) -> Operation:
    return Operation(process, f, key, value, type_, start, end if type_ != "info" else math.inf,  # type: ignore[arg-type]
                     0, None)


# --- register ----------------------------------------------------------------------------


def test_sequential_register_history_is_linearizable() -> None:
    ops = [op("write", 1, 0, 1), op("read", 1, 2, 3), op("cas", (1, 2), 4, 5), op("read", 2, 6, 7)]
    assert check_register_ops(ops) is True


def test_concurrent_operations_may_be_reordered() -> None:
    # The read overlaps the write: it may see either the old or the new value.
    ops = [op("write", 1, 0, 1), op("write", 2, 2, 6, process=1), op("read", 1, 3, 4, process=2)]
    assert check_register_ops(ops) is True


def test_stale_read_is_caught() -> None:
    ops = [op("write", 1, 0, 1), op("write", 2, 2, 3), op("read", 1, 4, 5, process=1)]
    assert check_register_ops(ops) is False
    anomalies = check_register(ops)
    assert len(anomalies) == 1
    shown = {(o.f, o.value) for o in anomalies[0].ops}
    assert ("read", 1) in shown and ("write", 2) in shown


def test_read_of_a_value_never_written_is_caught() -> None:
    assert check_register_ops([op("write", 1, 0, 1), op("read", 7, 2, 3)]) is False


def test_successful_cas_from_wrong_value_is_caught() -> None:
    ops = [op("write", 1, 0, 1), op("cas", (5, 6), 2, 3)]
    assert check_register_ops(ops) is False


def test_indeterminate_write_may_or_may_not_take_effect() -> None:
    took_effect = [op("write", 1, 0, 1), op("write", 2, 2, 0, "info"), op("read", 2, 5, 6)]
    never = [op("write", 1, 0, 1), op("write", 2, 2, 0, "info"), op("read", 1, 5, 6)]
    assert check_register_ops(took_effect) is True
    assert check_register_ops(never) is True


def test_indeterminate_write_cannot_take_effect_before_it_was_invoked() -> None:
    ops = [op("write", 1, 0, 1), op("read", 2, 2, 3), op("write", 2, 5, 0, "info")]
    assert check_register_ops(ops) is False


def test_failed_write_is_ignored_and_must_not_be_seen() -> None:
    ops = [op("write", 1, 0, 1), op("write", 2, 2, 3, "fail"), op("read", 2, 4, 5)]
    assert check_register_ops(ops) is False


def test_keys_are_checked_independently() -> None:
    ops = [op("write", 1, 0, 1, key="a"), op("write", 2, 0, 1, key="b"),
           op("read", 1, 2, 3, key="a"), op("read", 1, 2, 3, key="b")]
    anomalies = check_register(ops)
    assert [a.key for a in anomalies] == ["b"]


def test_minimal_slice_drops_unrelated_operations() -> None:
    ops = [op("write", i, 10 * i, 10 * i + 1) for i in range(1, 30)]
    ops.append(op("read", 3, 1000, 1001, process=1))  # stale: 29 was the last write
    ops += [op("write", 100 + i, 2000 + 10 * i, 2001 + 10 * i) for i in range(20)]
    anomaly = check_register(ops)[0]
    assert len(anomaly.ops) <= 3
    assert any(o.f == "read" and o.value == 3 for o in anomaly.ops)


# --- set ---------------------------------------------------------------------------------


def test_set_checker_accepts_complete_final_read() -> None:
    ops = [op("add", 1, 0, 1), op("add", 2, 0, 1), op("add", 3, 0, 0, "info"), op("add", 4, 0, 1, "fail")]
    result = check_set(ops, [1, 2, 3])
    assert result.anomalies == [] and result.acknowledged == 2


def test_set_checker_catches_lost_duplicate_unexpected_and_failed_writes() -> None:
    ops = [op("add", 1, 0, 1), op("add", 2, 0, 1), op("add", 4, 0, 1, "fail")]
    result = check_set(ops, [2, 2, 4, 9])
    kinds = sorted(a.kind for a in result.anomalies)
    assert kinds == ["duplicated", "failed-present", "lost", "unexpected"]
    assert result.lost == 1 and result.duplicated == 1


# --- counter -----------------------------------------------------------------------------


def test_counter_bounds_allow_indeterminate_increments() -> None:
    ops = [op("incr", 1, 0, 1), op("incr", 1, 0, 0, "info"), op("read", 2, 5, 6)]
    assert check_counter(ops, final=2) == []
    assert check_counter(ops, final=1) == []


def test_counter_catches_double_increment_and_lost_increment() -> None:
    ops = [op("incr", 1, 0, 1), op("incr", 1, 2, 3)]
    assert [a.kind for a in check_counter(ops, final=3)] == ["duplicated"]
    assert [a.kind for a in check_counter(ops, final=1)] == ["lost"]
    assert [a.kind for a in check_counter([*ops, op("read", 5, 4, 5)], final=2)] == ["counter-bounds"]


# --- list append -------------------------------------------------------------------------


def test_append_checker_accepts_ordered_lists() -> None:
    ops = [op("append", 1, 0, 1), op("append", 2, 2, 3), op("read", [1], 1.5, 1.8), op("append", 3, 2, 0, "info")]
    assert check_append(ops, {"k": [1, 2]}).anomalies == []


def test_append_checker_catches_order_lost_and_bad_read() -> None:
    ops = [op("append", 1, 0, 1), op("append", 2, 2, 3), op("append", 3, 4, 5), op("read", [1], 6, 7)]
    result = check_append(ops, {"k": [2, 1]})
    kinds = sorted(a.kind for a in result.anomalies)
    assert kinds == ["lost", "order", "read-not-prefix"]
    assert result.lost == 1
    dup = check_append([op("append", 1, 0, 1)], {"k": [1, 1]})
    assert [a.kind for a in dup.anomalies] == ["duplicated"]


# --- history pairing -----------------------------------------------------------------------


def test_history_pairs_invocations_and_marks_unfinished_as_info() -> None:
    history = History()
    a = history.invoke(0, "write", "k", 1)
    history.complete(a, "ok")
    b = history.invoke(1, "read", "k")
    history.complete(b, "ok", 1)
    history.invoke(2, "write", "k", 5)
    paired = pair(history.ops)
    assert [(p.f, p.value, p.type) for p in paired] == [("write", 1, "ok"), ("read", 1, "ok"), ("write", 5, "info")]
    assert math.isinf(paired[2].end)
    assert check_register_ops(paired) is True


def _random_linearizable_history(seed: int, n: int, processes: int = 5) -> list[Operation]:
    """Operations that each take effect at a random instant inside their interval."""
    import random

    rng = random.Random(seed)
    clock = 0.0
    value = None
    free_at = [0.0] * processes
    ops = []
    for _ in range(n):
        clock += rng.random()
        p = rng.randrange(processes)
        start = max(clock - rng.random() * 3, free_at[p])
        effect = clock = max(start, clock)
        end = effect + rng.random() * 3
        free_at[p] = end + 0.001
        kind = rng.choice(["read", "write", "cas"])
        if kind == "write":
            value = rng.randrange(5)
            ops.append(op("write", value, start, end, process=p))
        elif kind == "read":
            ops.append(op("read", value, start, end, process=p))
        else:
            old, new = rng.randrange(5), rng.randrange(5)
            if old == value:
                value = new
                ops.append(op("cas", (old, new), start, end, process=p))
            else:
                ops.append(op("cas", (old, new), start, end, "fail", process=p))
    return ops


def test_generated_linearizable_histories_are_accepted() -> None:
    for seed in range(30):
        ops = _random_linearizable_history(seed, 300)
        assert check_register_ops(ops) is True, seed
