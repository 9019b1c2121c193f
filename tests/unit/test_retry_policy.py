from __future__ import annotations

import random

import pytest

from ava_platform.models import AttemptOutcome, JobStatus
from ava_platform.scheduler import retry


def _decide(
    outcome: AttemptOutcome, attempt: int, max_retries: int = 2, lost: int = 0
) -> retry.Decision:
    return retry.decide(
        outcome,
        attempt=attempt,
        max_retries=max_retries,
        lost_count=lost,
        max_lost=3,
        base_s=1.0,
        rng=random.Random(7),
    )


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 60.0)]:
        delays = [retry.backoff_s(attempt, base_s=1.0, rng=rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2
        assert max(delays) <= ceiling
        assert len(set(delays)) > 100  # jittered, not constant


def test_failures_are_retried_up_to_max_retries() -> None:
    assert _decide(AttemptOutcome.FAILED, 1).status is JobStatus.QUEUED
    assert _decide(AttemptOutcome.FAILED, 2).status is JobStatus.QUEUED
    final = _decide(AttemptOutcome.FAILED, 3)
    assert final == retry.Decision(JobStatus.FAILED, None)


def test_last_timeout_ends_timed_out_and_platform_faults_retry() -> None:
    assert _decide(AttemptOutcome.TIMED_OUT, 1, max_retries=0).status is JobStatus.TIMED_OUT
    assert _decide(AttemptOutcome.PLATFORM, 1, max_retries=1).status is JobStatus.QUEUED
    assert _decide(AttemptOutcome.PLATFORM, 2, max_retries=1).status is JobStatus.FAILED


@pytest.mark.parametrize("outcome", [AttemptOutcome.SUCCEEDED, AttemptOutcome.CANCELLED])
def test_success_and_cancel_are_final(outcome: str) -> None:
    decision = _decide(outcome, 1)
    assert decision.retry_in_s is None
    assert decision.status.value == outcome


def test_lost_attempts_have_their_own_budget() -> None:
    # with no retries allowed, a lost attempt is still run again, immediately
    assert _decide(AttemptOutcome.WORKER_LOST, 1, max_retries=0, lost=1) == retry.Decision(
        JobStatus.QUEUED, 0.0
    )
    assert _decide(AttemptOutcome.WORKER_LOST, 3, max_retries=0, lost=3).status is JobStatus.FAILED
    # a real failure after two lost attempts is the first failure
    assert _decide(AttemptOutcome.FAILED, 3, max_retries=1, lost=2).status is JobStatus.QUEUED
