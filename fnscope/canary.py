"""Is a new function version worse than the one it replaces? The statistics behind a canary verdict.

One home for the decision, shared by the query API (``/api/deployments/verdict``, from the store) and the alert
evaluator (the ``canary`` rule, from its in-memory signals): both hand over the same ``Figures`` for the new
version and its baseline over the same window, and get the same ``Verdict``.

Each metric ends in one of three answers, so that too little traffic is never read as good news:

- **fail**: the new version is significantly worse, and by more than the metric's margin. Rates (errors,
  timeouts, throttles) use the one-sided Fisher exact test on the 2x2 table (exact for any count, the right test
  when failures are few); p99 duration counts the new version's invocations slower than the baseline's p99
  allowance and tests that count against the 1 % a no-worse version would have, with the exact binomial tail.
  Any metric failing fails the verdict, so each test runs at ``alpha / 4`` (Bonferroni): the chance that a
  version no worse than its baseline is rolled back stays under ``alpha``.
- **pass**: the new version is shown no worse than the baseline plus the margin: for rates, the one-sided upper
  confidence bound of the difference (Newcombe's hybrid score interval, Newcombe 1998, "Interval estimation for
  the difference between independent proportions", method 10, built from Wilson score intervals) is below the
  margin; for p99, the Wilson upper bound of the slow share is below 1 %. A verdict passes only when every
  metric passes, each at ``alpha``: an intersection-union test (Berger 1982), so no correction is needed.
- **wait**: neither yet. With no failures at all a rate passes only after about ``z^2 / margin`` invocations
  (135 for the 2-point margins, 270 for timeouts' 1 point), the p99 after about 270, and the p99 is not judged at
  all while the baseline has fewer than ``min_p99_baseline`` invocations (below 100 its p99 is its slowest call).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Decision = Literal["pass", "fail", "wait"]
RATE_METRICS = ("error_rate", "timeout_rate", "throttle_rate")
METRICS = (*RATE_METRICS, "p99_duration")
P99_SHARE = 0.01  # the share of invocations above a p99, by definition


class Policy(BaseModel):
    """What counts as worse (``canary:`` in fnscope.yaml). Margins are absolute differences of rates."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="chance of a wrong fail, and of a wrong pass per metric")
    error_margin: float = Field(0.02, gt=0, lt=1, description="error rate increase tolerated (0.02 = 2 points)")
    timeout_margin: float = Field(0.01, gt=0, lt=1, description="timeout rate increase tolerated")
    throttle_margin: float = Field(0.02, gt=0, lt=1, description="throttle rate increase tolerated")
    p99_tolerance: float = Field(
        0.2, ge=0, description="a new-version call is slow past the baseline's p99 x (1 + this) + p99_slack_ms"
    )
    p99_slack_ms: float = Field(10.0, ge=0, description="added to the slow threshold, for very fast functions")
    min_p99_baseline: int = Field(100, ge=1, description="baseline invocations before its p99 is compared")

    def margin(self, metric: str) -> float:
        return {"error_rate": self.error_margin, "timeout_rate": self.timeout_margin}.get(metric, self.throttle_margin)

    def slow_threshold_ms(self, baseline_p99_ms: float) -> float:
        return baseline_p99_ms * (1 + self.p99_tolerance) + self.p99_slack_ms


@dataclass(frozen=True)
class Figures:
    """One version's counts over the window. ``slow``/``timed``: for the new version, how many of ``timed``
    invocations ran longer than the baseline's p99 allowance (None where not counted)."""

    version: str
    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    throttles: int = 0
    p99_ms: float | None = None
    slow: int | None = None
    timed: int | None = None

    def count(self, metric: str) -> tuple[int, int]:
        """(failures, trials) of a rate metric; a throttled call never ran, so it is a trial of its own. Counts
        from different sources (a timeout fact, a report) can disagree at a window's edge: failures are clamped
        to the trials, never past them (no rate above 1)."""
        if metric == "error_rate":
            failures, trials = self.errors, self.invocations
        elif metric == "timeout_rate":
            failures, trials = self.timeouts, self.invocations
        else:
            failures, trials = self.throttles, self.invocations + self.throttles
        return max(0, min(failures, trials)), max(0, trials)


@dataclass
class MetricVerdict:
    decision: Decision
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    verdict: Decision
    reasons: list[str]
    metrics: dict[str, MetricVerdict]

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": self.reasons,
            "metrics": {k: asdict(v) for k, v in self.metrics.items()},
        }


# --- which version ---------------------------------------------------------------------------------------------

_QUALIFIED_PARTS = (2, 8)  # name:7, or arn:aws:lambda:region:account:function:name:7


def routed_version(function_version: str, function_name: str) -> str:
    """The version a throttled ``Invoke`` was routed to, from its CloudTrail record: ``additionalEventData.
    functionVersion`` (an ARN ending in the version), else a numeric qualifier in the ``requestParameters.
    functionName`` it was called with; '' when neither says (an alias, or the unqualified name)."""
    if function_version:
        return function_version.rsplit(":", 1)[-1]
    ref = function_name.split(":")
    return ref[-1] if len(ref) in _QUALIFIED_PARTS and ref[-1].isascii() and ref[-1].isdigit() else ""


# --- the tests ---------------------------------------------------------------------------------------------


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _upper_tail(log_terms: Iterable[float]) -> float:
    """Sum exp(t) over a tail's log terms, stopping once a term is negligible (past the mode they only shrink)."""
    total = 0.0
    for t in log_terms:
        term = math.exp(t)
        total += term
        if term < total * 1e-16:
            break
    return min(1.0, total)


def fisher_greater(x1: int, n1: int, x2: int, n2: int) -> float:
    """One-sided Fisher exact p-value that group 1's failure rate exceeds group 2's: P(X >= x1) for X
    hypergeometric (n1 draws from n1 + n2 trials holding x1 + x2 failures)."""
    total, failures = n1 + n2, x1 + x2
    if n1 == 0 or n2 == 0 or failures == 0:
        return 1.0
    log_all = _log_choose(total, n1)
    first = max(x1, n1 - (total - failures))
    if x1 <= failures * n1 / total:  # at or below the expected count: a large p, summed in full
        first = max(x1, 0)
        return min(
            1.0,
            sum(
                math.exp(_log_choose(failures, k) + _log_choose(total - failures, n1 - k) - log_all)
                for k in range(first, min(failures, n1) + 1)
            ),
        )
    return _upper_tail(
        _log_choose(failures, k) + _log_choose(total - failures, n1 - k) - log_all
        for k in range(first, min(failures, n1) + 1)
    )


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the exact one-sided binomial test."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    lp, lq = math.log(p), math.log1p(-p)
    if k <= n * p:  # at or below the mean: 1 - the (short) lower tail
        lower = sum(math.exp(_log_choose(n, i) + i * lp + (n - i) * lq) for i in range(0, k))
        return min(1.0, max(0.0, 1.0 - lower))
    return _upper_tail(_log_choose(n, i) + i * lp + (n - i) * lq for i in range(k, n + 1))


def wilson(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for a proportion x/n (Wilson 1927), at normal quantile z."""
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_upper(x1: int, n1: int, x2: int, n2: int, z: float) -> float:
    """Upper confidence bound of p1 - p2 by Newcombe's hybrid score method (1998, method 10)."""
    p1, p2 = x1 / n1, x2 / n2
    _, u1 = wilson(x1, n1, z)
    l2, _ = wilson(x2, n2, z)
    return p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


# --- judging -----------------------------------------------------------------------------------------------

_NAMES = {"error_rate": "error rate", "timeout_rate": "timeout rate", "throttle_rate": "throttle rate"}


def _pct(value: float) -> str:
    return f"{value:.1%}"


def judge_rate(metric: str, new: Figures, base: Figures, policy: Policy) -> MetricVerdict:
    x1, n1 = new.count(metric)
    x2, n2 = base.count(metric)
    name, margin = _NAMES[metric], policy.margin(metric)
    figures: dict[str, Any] = {"new": x1, "new_of": n1, "baseline": x2, "baseline_of": n2, "margin": margin}
    if n1 == 0 or n2 == 0:
        who = "the new version" if n1 == 0 else "the baseline"
        return MetricVerdict("wait", f"{name}: no traffic on {who} yet", figures)
    r1, r2 = x1 / n1, x2 / n2
    p = fisher_greater(x1, n1, x2, n2)
    upper = newcombe_upper(x1, n1, x2, n2, NormalDist().inv_cdf(1 - policy.alpha))
    figures |= {"new_rate": round(r1, 6), "baseline_rate": round(r2, 6), "p_value": p, "upper_bound": round(upper, 6)}
    said = f"{name} {_pct(r1)} ({x1} of {n1}) against {_pct(r2)} ({x2} of {n2}) on version {base.version}"
    if p < policy.alpha / len(METRICS) and r1 - r2 > margin:
        return MetricVerdict(
            "fail", f"{said}: worse by {(r1 - r2) * 100:.1f} points (Fisher exact p = {p:.2g})", figures
        )
    if upper < margin:
        return MetricVerdict("pass", f"{said}: at most {upper * 100:+.1f} points (margin {margin * 100:g})", figures)
    return MetricVerdict(
        "wait", f"{said}: too little traffic to tell (could still be {upper * 100:+.1f} points; margin {margin * 100:g})",
        figures,
    )  # fmt: skip


def judge_p99(new: Figures, base: Figures, policy: Policy) -> MetricVerdict:
    figures: dict[str, Any] = {
        "new_p99_ms": new.p99_ms,
        "baseline_p99_ms": base.p99_ms,
        "baseline_of": base.invocations,
    }
    if base.invocations < policy.min_p99_baseline or base.p99_ms is None:
        return MetricVerdict(
            "wait",
            f"p99 duration: the baseline has {base.invocations} invocations, fewer than the "
            f"{policy.min_p99_baseline} a p99 needs",
            figures,
        )
    threshold = policy.slow_threshold_ms(base.p99_ms)
    timed = max(0, new.timed or 0)
    slow = max(0, min(new.slow or 0, timed))
    figures |= {"slow_threshold_ms": round(threshold, 3), "slow": slow, "new_of": timed}
    if timed == 0:
        return MetricVerdict("wait", "p99 duration: no timed invocations of the new version yet", figures)
    p = binomial_tail(slow, timed, P99_SHARE)
    _, upper = wilson(slow, timed, NormalDist().inv_cdf(1 - policy.alpha))
    figures |= {"p_value": p, "upper_bound": round(upper, 6)}
    said = (
        f"p99 duration {new.p99_ms if new.p99_ms is not None else '?'} ms against {base.p99_ms:g} ms on version {base.version}: "
        f"{slow} of {timed} calls over {threshold:.0f} ms"
    )
    if p < policy.alpha / len(METRICS):
        return MetricVerdict("fail", f"{said}, where a version no slower has 1 % (binomial p = {p:.2g})", figures)
    if upper < P99_SHARE:
        return MetricVerdict("pass", f"{said} (at most {upper:.2%})", figures)
    return MetricVerdict(
        "wait", f"{said}: too little traffic to tell (could still be {upper:.1%}; 1 % allowed)", figures
    )


def judge(new: Figures, base: Figures | None, policy: Policy | None = None) -> Verdict:
    """The verdict on ``new`` against ``base`` (None: nothing to compare with, which is a wait)."""
    policy = policy or Policy()
    if base is None:
        return Verdict("wait", ["no baseline: no other version ran in the window (name one with baseline)"], {})
    metrics = {m: judge_rate(m, new, base, policy) for m in RATE_METRICS}
    metrics["p99_duration"] = judge_p99(new, base, policy)
    decisions = {m.decision for m in metrics.values()}
    verdict: Decision = "fail" if "fail" in decisions else "wait" if "wait" in decisions else "pass"
    reasons = [m.reason for m in metrics.values() if m.decision == verdict]
    return Verdict(verdict, reasons, metrics)
