"""A deterministic discrete-event model of the Lambda scheduler.

Arrivals (a Poisson process, bursty for some functions) are admitted against the function's reserved
concurrency or the account's unreserved pool, run in a reused warm execution environment when one is idle,
otherwise cold-start a new one. Everything random comes from one seeded ``random.Random``, consumed in
event order, so a seed fully determines the run.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

Status = Literal["success", "error", "timeout", "oom", "throttled"]

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_LIMIT = 1000

RESERVED_LIMIT_REASON = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT_REASON = "ConcurrentInvocationLimitExceeded"

_BASE_NAMES = (
    "orders-api",
    "payments-worker",
    "inventory-sync",
    "users-api",
    "notifications-worker",
    "images-resizer",
    "search-api",
    "billing-processor",
    "auth-authorizer",
    "reports-scheduler",
    "checkout-api",
    "shipping-worker",
    "catalog-api",
    "emails-sender",
    "webhooks-handler",
    "analytics-consumer",
)
_PREFIXES = (
    "orders",
    "payments",
    "inventory",
    "users",
    "notifications",
    "images",
    "search",
    "billing",
    "auth",
    "reports",
    "checkout",
    "shipping",
    "catalog",
    "emails",
    "webhooks",
    "analytics",
)
_SUFFIXES = ("api", "worker", "processor", "handler", "consumer", "sync", "scheduler", "resizer")

# (runtime identifier, runtime version as INIT_START prints it)
_RUNTIMES = (
    ("python3.12", "python:3.12.v38"),
    ("python3.11", "python:3.11.v52"),
    ("nodejs20.x", "nodejs:20.v41"),
    ("nodejs22.x", "nodejs:22.v19"),
)


def function_names(n: int) -> list[str]:
    """``n`` distinct, stable names: the base catalogue first, then prefix-suffix combinations, then numbered."""
    names: list[str] = list(_BASE_NAMES[:n])
    seen = set(names)
    combos = [f"{p}-{s}" for s in _SUFFIXES for p in _PREFIXES]
    for name in combos:
        if len(names) >= n:
            break
        if name not in seen:
            names.append(name)
            seen.add(name)
    k = 2
    while len(names) < n:
        names.extend(f"{name}-{k}" for name in combos[: n - len(names)])
        k += 1
    return names


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function's configuration and behaviour."""

    name: str
    runtime: str = "python3.12"
    runtime_version: str = "python:3.12.v38"
    memory_mb: int = 128
    median_ms: float = 100.0  # lognormal duration: median and shape
    sigma: float = 0.5
    error_rate: float = 0.01
    timeout_rate: float = 0.002  # hangs that run into the timeout, on top of the lognormal tail
    oom_rate: float = 0.0005
    timeout_s: float = 3.0
    reserved_concurrency: int | None = None
    alias: str | None = None
    versions: tuple[str, ...] = ("$LATEST",)
    version_weights: tuple[float, ...] = (1.0,)
    weight: float = 1.0  # share of the total arrival rate (normalised over all functions)
    burst_mean: float = 1.0  # mean arrivals per Poisson event; > 1 makes arrivals bursty
    init_median_ms: float = 300.0
    keepalive_s: float = 600.0  # idle time after which an environment is reclaimed
    base_memory_mb: int = 60
    tracing: bool = False
    log_format: Literal["Text", "JSON"] = "Text"
    route_key: str = "POST /orders"
    service: str = "orders"

    def arn(self, region: str, account: str, qualifier: str | None = None) -> str:
        base = f"arn:aws:lambda:{region}:{account}:function:{self.name}"
        return f"{base}:{qualifier}" if qualifier else base


@dataclass(frozen=True, slots=True)
class SimInvocation:
    """One invocation attempt. ``start`` is the arrival: a cold start's init runs from ``start`` for ``init_ms``,
    then the handler runs for ``duration_ms`` until ``end``. Throttled attempts have ``start == end``."""

    function: str
    version: str
    alias: str | None
    request_id: str
    start: datetime
    end: datetime
    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_mb: int
    init_ms: float | None
    status: Status
    api_request_id: str
    trace_id: str
    environment_id: str = ""  # 32 hex chars naming the execution environment (its log stream); "" if throttled
    environment_created: datetime | None = None
    error_type: str | None = None
    throttle_reason: str | None = None
    timeout_s: float = 3.0

    @property
    def cold_start(self) -> bool:
        return self.init_ms is not None

    @property
    def handler_start(self) -> datetime:
        return self.start + timedelta(milliseconds=self.init_ms or 0.0)

    @property
    def log_stream(self) -> str:
        created = self.environment_created or self.start
        return f"{created:%Y/%m/%d}/[{self.version}]{self.environment_id}"


@dataclass(frozen=True)
class Simulation:
    seed: int
    start: datetime
    duration_s: float
    account_id: str
    region: str
    account_limit: int
    functions: tuple[FunctionSpec, ...]
    invocations: tuple[SimInvocation, ...]
    by_name: dict[str, FunctionSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.functions})


def default_functions(n: int, rng: random.Random, rate: float = 20.0) -> list[FunctionSpec]:
    """A plausible fleet. Function 1 (``payments-worker``) gets ~15 % of the traffic in bursts and a reserved
    concurrency of about half its mean need (at least 2), so even a few seconds' run reliably shows throttles."""
    specs: list[FunctionSpec] = []
    for i, name in enumerate(function_names(n)):
        prefix, _, suffix = name.partition("-")
        is_api = suffix.split("-")[0] in ("api", "authorizer", "handler")
        runtime, runtime_version = _RUNTIMES[rng.randrange(len(_RUNTIMES))]
        memory = rng.choice((128, 256, 512, 1024, 1769) if not name.startswith("images") else (1024, 2048, 3008))
        median = rng.lognormvariate(math.log(60 if is_api else 350), 0.5)
        timeout_s = rng.choice((3.0, 6.0, 10.0, 29.0) if is_api else (15.0, 30.0, 60.0))
        reserved: int | None = None
        if rng.random() < 0.2:
            reserved = rng.choice((10, 25, 50, 100, 200))
        burst = 1.0
        if i == 1:
            reserved = max(2, round(0.5 * rate * 0.15 * 0.3))  # half of rate * share * median duration
            burst, median, timeout_s = 5.0, 300.0, 30.0
        elif i == 3:
            reserved = 50
        alias: str | None = None
        versions: tuple[str, ...] = ("$LATEST",)
        weights: tuple[float, ...] = (1.0,)
        if rng.random() < 0.5:
            alias = rng.choice(("live", "prod"))
            v = rng.randint(2, 40)
            if rng.random() < 0.3:  # a canary: the alias splits traffic between two versions
                versions, weights = (str(v), str(v + 1)), (0.9, 0.1)
            else:
                versions = (str(v),)
        specs.append(
            FunctionSpec(
                name=name,
                runtime=runtime,
                runtime_version=runtime_version,
                memory_mb=memory,
                median_ms=median,
                sigma=rng.uniform(0.3, 0.8),
                error_rate=rng.uniform(0.005, 0.05),
                timeout_rate=rng.uniform(0.001, 0.01),
                oom_rate=0.02 if name.startswith("images") else rng.uniform(0.0002, 0.002),
                timeout_s=timeout_s,
                reserved_concurrency=reserved,
                alias=alias,
                versions=versions,
                version_weights=weights,
                weight=rng.lognormvariate(0.0, 0.6),
                burst_mean=burst,
                init_median_ms=rng.uniform(150.0, 800.0),
                keepalive_s=rng.uniform(300.0, 900.0),
                base_memory_mb=max(40, int(memory * rng.uniform(0.2, 0.6))),
                tracing=rng.random() < 0.5,
                log_format="JSON" if rng.random() < 0.4 else "Text",
                route_key=f"{'GET' if is_api and rng.random() < 0.5 else 'POST'} /{prefix}",
                service=prefix,
            )
        )
    if n > 1:  # the bursty function gets ~15 % of all traffic whatever the other weights came out as
        others = sum(s.weight for j, s in enumerate(specs) if j != 1)
        specs[1] = replace(specs[1], weight=0.15 * others / 0.85)
    return specs


def _arrivals(specs: list[FunctionSpec], rate: float, duration_s: float, rng: random.Random) -> list[tuple[float, int]]:
    """(offset seconds, function index) for every arrival, merged in time order."""
    total = sum(s.weight for s in specs) or 1.0
    out: list[tuple[float, int]] = []
    for idx, spec in enumerate(specs):
        fn_rate = rate * spec.weight / total
        event_rate = fn_rate / max(spec.burst_mean, 1.0)
        if event_rate <= 0:
            continue
        t = rng.expovariate(event_rate)
        while t < duration_s:
            size = 1
            if spec.burst_mean > 1.0:  # geometric burst size with the given mean, spread over ~100 ms
                p = 1.0 / spec.burst_mean
                while rng.random() > p:
                    size += 1
            for k in range(size):
                at = t + (rng.uniform(0.0, 0.1) if k else 0.0)
                if at < duration_s:
                    out.append((at, idx))
            t += rng.expovariate(event_rate)
    out.sort()
    return out


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _api_request_id(rng: random.Random) -> str:
    # HTTP API request ids look like "KQ6X9jbSoAMEMwQ=": 14 base64 characters and a pad
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(14)) + "="


def _trace_id(rng: random.Random, epoch_s: int) -> str:
    return f"1-{epoch_s:08x}-{rng.getrandbits(96):024x}"


@dataclass
class _Env:
    env_id: str
    created: float
    idle_since: float = 0.0


def simulate(
    functions: int = 8,
    rate: float = 20.0,
    duration_s: float = 10.0,
    seed: int = 0,
    start: datetime | None = None,
    *,
    account_limit: int = DEFAULT_ACCOUNT_LIMIT,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = DEFAULT_REGION,
    specs: list[FunctionSpec] | None = None,
) -> Simulation:
    """Run the model: ``rate`` arrivals/s in total over ``duration_s`` simulated seconds from ``start``."""
    rng = random.Random(seed)
    start = (start or datetime.now(UTC)).astimezone(UTC)
    fleet = list(specs) if specs is not None else default_functions(functions, rng, rate)
    pool = max(0, account_limit - sum(s.reserved_concurrency or 0 for s in fleet))

    running: list[tuple[float, int, int, str, _Env]] = []  # heap of (end, seq, function index, version, env)
    running_per_fn = [0] * len(fleet)
    unreserved_running = 0
    idle: dict[tuple[int, str], list[_Env]] = {}
    out: list[SimInvocation] = []

    def at(offset: float) -> datetime:
        return start + timedelta(microseconds=round(offset * 1e6))

    for seq, (t, idx) in enumerate(_arrivals(fleet, rate, duration_s, rng)):
        while running and running[0][0] <= t:
            end_t, _, j, ver, env = heapq.heappop(running)
            running_per_fn[j] -= 1
            if fleet[j].reserved_concurrency is None:
                unreserved_running -= 1
            env.idle_since = end_t
            idle.setdefault((j, ver), []).append(env)

        spec = fleet[idx]
        version = rng.choices(spec.versions, spec.version_weights)[0] if len(spec.versions) > 1 else spec.versions[0]
        request_id = _uuid4(rng)
        api_request_id = _api_request_id(rng)
        trace_id = _trace_id(rng, int(start.timestamp() + t))

        reason: str | None = None
        if spec.reserved_concurrency is not None:
            if running_per_fn[idx] >= spec.reserved_concurrency:
                reason = RESERVED_LIMIT_REASON
        elif unreserved_running >= pool:
            reason = ACCOUNT_LIMIT_REASON
        if reason is not None:
            out.append(
                SimInvocation(
                    function=spec.name,
                    version=version,
                    alias=spec.alias,
                    request_id=request_id,
                    start=at(t),
                    end=at(t),
                    duration_ms=0.0,
                    billed_ms=0,
                    memory_mb=spec.memory_mb,
                    max_memory_mb=0,
                    init_ms=None,
                    status="throttled",
                    api_request_id=api_request_id,
                    trace_id=trace_id,
                    throttle_reason=reason,
                    timeout_s=spec.timeout_s,
                )
            )
            continue

        envs = idle.get((idx, version), [])
        envs[:] = [e for e in envs if t - e.idle_since <= spec.keepalive_s]
        init_ms: float | None = None
        if envs:
            env = envs.pop()  # most recently used first, like Lambda's preference for hot sandboxes
        else:
            env = _Env(env_id=f"{rng.getrandbits(128):032x}", created=t)
            init_ms = round(min(1500.0, max(100.0, rng.lognormvariate(math.log(spec.init_median_ms), 0.35))), 2)

        status: Status
        error_type: str | None = None
        timeout_ms = spec.timeout_s * 1000.0
        u = rng.random()
        if u < spec.oom_rate:
            status, error_type = "oom", "Runtime.OutOfMemory"
            duration = rng.lognormvariate(math.log(spec.median_ms), spec.sigma) * 1.5
        elif u < spec.oom_rate + spec.timeout_rate:
            status, duration = "timeout", timeout_ms
        else:
            duration = rng.lognormvariate(math.log(spec.median_ms), spec.sigma)
            if duration >= timeout_ms:
                status, duration = "timeout", timeout_ms
            elif rng.random() < spec.error_rate:
                status = "error"
            else:
                status = "success"
        if status == "timeout":
            error_type = "Sandbox.Timedout"
        duration = round(min(duration, timeout_ms), 2)
        if status == "oom":
            max_mem = spec.memory_mb
        else:
            max_mem = int(spec.base_memory_mb * (1.0 + 0.08 * abs(rng.gauss(0.0, 1.0))) + (15 if init_ms else 0))
            max_mem = max(1, min(spec.memory_mb, max_mem))

        end_t = t + ((init_ms or 0.0) + duration) / 1000.0
        out.append(
            SimInvocation(
                function=spec.name,
                version=version,
                alias=spec.alias,
                request_id=request_id,
                start=at(t),
                end=at(end_t),
                duration_ms=duration,
                billed_ms=math.ceil(duration),
                memory_mb=spec.memory_mb,
                max_memory_mb=max_mem,
                init_ms=init_ms,
                status=status,
                api_request_id=api_request_id,
                trace_id=trace_id,
                environment_id=env.env_id,
                environment_created=at(env.created),
                error_type=error_type,
                timeout_s=spec.timeout_s,
            )
        )
        heapq.heappush(running, (end_t, seq, idx, version, env))
        running_per_fn[idx] += 1
        if spec.reserved_concurrency is None:
            unreserved_running += 1

    return Simulation(
        seed=seed,
        start=start,
        duration_s=duration_s,
        account_id=account_id,
        region=region,
        account_limit=account_limit,
        functions=tuple(fleet),
        invocations=tuple(out),
    )
