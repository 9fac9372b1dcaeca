"""The windows the alert rules read of per-second buckets, kept up to date as events arrive, against plain readings.

Counts and durations are added at any second (late ones too), windows of a few lengths are asked from starts that
move on, jump ahead or go back, and old seconds are forgotten in between: each window's total, and its durations in
order, must always be what reading every second it covers gives.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fnscope.alerts.second_buckets import SecondCounts, SecondDurations

second = st.integers(0, 30)
step = st.one_of(
    st.tuples(st.just("add"), second, st.integers(1, 3), st.sampled_from([0.5, 1.0, 1.0, 7.25, 300.0])),
    st.tuples(st.just("ask"), second, st.sampled_from([10.0, 60.0, 300.0]), st.none()),
    st.tuples(st.just("forget"), second, st.none(), st.none()),
)


@settings(max_examples=400, deadline=None)
@given(steps=st.lists(step, max_size=120))
def test_windows_read_what_every_second_holds(steps) -> None:  # type: ignore[no-untyped-def]
    counts, durations = SecondCounts(), SecondDurations()
    plain: dict[int, list[float]] = {}
    forgotten = 0
    for op, at, arg, value in steps:
        if op == "add":
            at = max(at, forgotten)  # the signals take nothing older than what they forget
            counts.add(at, arg)
            for _ in range(arg):
                durations.add(at, value)
            plain.setdefault(at, []).extend([value] * arg)
        elif op == "forget":
            counts.forget_before(at)
            durations.forget_before(at)
            plain = {s: v for s, v in plain.items() if s >= at}
            forgotten = max(forgotten, at)
            assert set(counts) == set(durations) == set(plain)
        else:
            lo = max(at, forgotten)
            inside = [v for s, values in plain.items() if s >= lo for v in values]
            assert counts.total_since(lo, arg) == len(inside)
            assert list(durations.sorted_since(lo, arg)) == sorted(inside)
