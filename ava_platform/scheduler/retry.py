"""Retry policy: pure arithmetic, so it is unit-tested without clocks or containers."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ava_platform.models import AttemptOutcome, JobStatus


@dataclass(frozen=True)
class Decision:
    status: JobStatus
    retry_in_s: float | None  # set when the job goes back to the queue


def backoff_s(
    attempt: int, *, base_s: float, cap_s: float = 60.0, rng: random.Random | None = None
) -> float:
    """Exponential with 'equal jitter': half fixed, half random, so retries spread out but
    never collapse to zero."""
    ceiling = min(cap_s, base_s * float(2 ** max(0, attempt - 1)))
    jitter: float = (rng or random.Random()).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def decide(
    outcome: AttemptOutcome,
    *,
    attempt: int,
    max_retries: int,
    lost_count: int,
    max_lost: int,
    base_s: float,
    rng: random.Random | None = None,
) -> Decision:
    if outcome is AttemptOutcome.SUCCEEDED:
        return Decision(JobStatus.SUCCEEDED, None)
    if outcome is AttemptOutcome.CANCELLED:
        return Decision(JobStatus.CANCELLED, None)
    if outcome is AttemptOutcome.WORKER_LOST:
        # not the handler's fault: retried on its own budget, so kill -9 never eats a retry
        if lost_count < max_lost:
            return Decision(JobStatus.QUEUED, 0.0)
        return Decision(JobStatus.FAILED, None)
    failures = attempt - lost_count
    if failures <= max_retries:
        return Decision(JobStatus.QUEUED, backoff_s(failures, base_s=base_s, rng=rng))
    final = JobStatus.TIMED_OUT if outcome is AttemptOutcome.TIMED_OUT else JobStatus.FAILED
    return Decision(final, None)
