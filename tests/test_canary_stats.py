"""The statistics behind canary verdicts (fnscope.canary) against exact arithmetic and published values."""

from __future__ import annotations

from fractions import Fraction
from math import comb

from hypothesis import given, settings
from hypothesis import strategies as st

from fnscope.canary import (
    Figures,
    Policy,
    binomial_tail,
    fisher_greater,
    judge,
    newcombe_upper,
    routed_version,
    wilson,
)

Z95 = 1.959963984540054


def _fisher_exact(x1: int, n1: int, x2: int, n2: int) -> Fraction:
    total, failures = n1 + n2, x1 + x2
    terms = (comb(failures, k) * comb(total - failures, n1 - k) for k in range(x1, min(failures, n1) + 1))
    return Fraction(sum(terms), comb(total, n1))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fisher_matches_the_exact_hypergeometric_tail(data: st.DataObject) -> None:
    n1, n2 = data.draw(st.integers(1, 400)), data.draw(st.integers(1, 400))
    x1, x2 = data.draw(st.integers(0, n1)), data.draw(st.integers(0, n2))
    exact = float(_fisher_exact(x1, n1, x2, n2)) if x1 + x2 else 1.0
    assert abs(fisher_greater(x1, n1, x2, n2) - exact) <= 1e-9 * max(exact, 1e-300) + 1e-15


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 2000), st.data())
def test_binomial_tail_matches_exact_sums(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, min(n, 80)))
    exact = float(Fraction(sum(comb(n, i) * 99 ** (n - i) for i in range(k, n + 1)), 100**n))  # p = 1/100
    assert abs(binomial_tail(k, n, 0.01) - exact) <= 1e-9 * max(exact, 1e-300) + 1e-15


def test_intervals_match_newcombes_published_examples() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (upper limits), and the Wilson
    # interval of 81/263 from his single-proportion paper (same issue, 857-872).
    for (x1, n1, x2, n2), upper in {
        (56, 70, 48, 80): 0.3339,
        (9, 10, 3, 10): 0.8090,
        (6, 7, 2, 7): 0.8062,
        (5, 56, 0, 29): 0.1926,
    }.items():
        assert round(newcombe_upper(x1, n1, x2, n2, Z95), 4) == upper
    assert tuple(round(v, 4) for v in wilson(81, 263, Z95)) == (0.2553, 0.3662)


def _figures(version: str, n: int, errors: int = 0, p99: float | None = 100.0, slow: int = 0) -> Figures:
    return Figures(version, invocations=n, errors=errors, p99_ms=p99, slow=slow, timed=n)


def test_too_little_traffic_waits_and_a_clear_regression_fails_even_on_little() -> None:
    base = _figures("1", 5000, errors=50)
    assert judge(_figures("2", 15), base).verdict == "wait"
    failing = judge(_figures("2", 30, errors=12), base)
    assert failing.verdict == "fail"
    assert failing.metrics["error_rate"].decision == "fail"
    assert "40.0%" in failing.reasons[0]
    assert judge(_figures("2", 2000, errors=18, slow=4), base).verdict == "pass"
    # a difference within the margin never fails, however much traffic shows it
    within = judge(_figures("2", 200_000, errors=2_500, slow=400), _figures("1", 200_000, errors=2_000))
    assert within.metrics["error_rate"].decision == "pass"


def test_p99_needs_a_baseline_with_enough_calls_and_fails_on_slow_calls() -> None:
    small_base = _figures("1", 60)
    assert judge(_figures("2", 2000), small_base).metrics["p99_duration"].decision == "wait"
    slow = judge(_figures("2", 400, slow=30), _figures("1", 5000))
    assert slow.verdict == "fail" and slow.metrics["p99_duration"].decision == "fail"
    assert judge(_figures("2", 400, slow=30), None).verdict == "wait"


def test_the_policy_margins_move_the_line() -> None:
    new, base = _figures("2", 3000, errors=150), _figures("1", 3000, errors=60)  # 5 % against 2 %
    assert judge(new, base).verdict == "fail"
    assert judge(new, base, Policy(error_margin=0.05)).metrics["error_rate"].decision != "fail"


def test_how_much_clean_traffic_a_pass_takes() -> None:
    """What the README promises: with no failures, error and throttle rates pass after about 135 calls, the
    timeout rate and the p99 after about 270."""
    base = Figures("1", 100_000, p99_ms=100.0)

    def decisions(n: int) -> dict[str, str]:
        return {k: m.decision for k, m in judge(_figures("2", n), base).metrics.items()}

    assert decisions(125) == dict.fromkeys(("error_rate", "timeout_rate", "throttle_rate", "p99_duration"), "wait")
    assert decisions(145) == {
        "error_rate": "pass",
        "throttle_rate": "pass",
        "timeout_rate": "wait",
        "p99_duration": "wait",
    }
    assert decisions(260)["timeout_rate"] == decisions(260)["p99_duration"] == "wait"
    assert set(decisions(280).values()) == {"pass"}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_counts_that_disagree_never_crash_a_verdict(data: st.DataObject) -> None:
    # counts from different sources can disagree at a window's edge: more timeouts (or slow calls) than calls
    count = st.integers(0, 500)
    new = Figures(
        "8", *(data.draw(count) for _ in range(4)), p99_ms=90.0, slow=data.draw(count), timed=data.draw(count)
    )
    base = Figures("7", *(data.draw(count) for _ in range(4)), p99_ms=data.draw(st.sampled_from([None, 80.0])))
    verdict = judge(new, base, Policy(min_p99_baseline=1))
    assert verdict.verdict in ("pass", "fail", "wait")
    for metric in verdict.metrics.values():
        rates = [metric.figures.get(k) for k in ("new_rate", "baseline_rate", "upper_bound")]
        assert all(r is None or -1 <= r <= 1 for r in rates)


def test_the_version_a_throttled_invoke_went_to_is_read_one_way() -> None:
    arn = "arn:aws:lambda:eu-west-1:111122223333:function:checkout"
    cases = [
        ((f"{arn}:8", f"{arn}:live"), "8"),  # where Lambda routed it, over the alias it was called through
        ((f"{arn}:$LATEST", "checkout"), "$LATEST"),
        (("", f"{arn}:7"), "7"),  # no functionVersion: a numeric qualifier in the name called
        (("", "checkout:7"), "7"),
        (("", f"{arn}:live"), ""),  # an alias says nothing of the version
        (("", "checkout"), ""),
        (("", "111122223333:checkout:7"), ""),  # neither name:7 nor a whole ARN
        (("", "checkout:\u0667"), ""),  # a digit, but not 0-9
    ]
    assert [routed_version(*given) for given, _ in cases] == [want for _, want in cases]
