"""notify: posts due webhook deliveries (ingestflow/notify). Started by the dispatcher when one is due and no run
of it is in flight; it stays while more fall due soon (a burst of completions is one run, not one per event),
then ends. Each post is a task run, visible in the Prefect UI; a refused post is recorded on its delivery and
retried on the delivery's own schedule by a later loop or run, so a receiver that is down never holds a flow."""

from __future__ import annotations

import time
from collections import Counter

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from ingestflow.notify import delivery
from ingestflow.notify.delivery import Attempt
from ingestflow.settings import get_settings

POLL_S = 1.0


@task(name="deliver-webhook", task_run_name="deliver {attempt.event}", cache_policy=NO_CACHE,
      persist_result=False, retries=3, retry_delay_seconds=5)
def deliver_webhook(attempt: Attempt) -> str:
    """One signed POST and its record; task retries cover only the database being away (the post is then made
    again with the same event id: at least once)."""
    status = delivery.deliver(get_settings(), attempt)
    return status.value if status is not None else "webhook removed"


@flow(name="notify", log_prints=True)
def notify(linger_s: float = 60.0, at_most_s: float = 900.0) -> dict[str, int]:
    settings = get_settings()
    outcomes: Counter[str] = Counter()
    until = time.monotonic() + at_most_s
    while time.monotonic() < until:
        due = delivery.claim_due(settings)
        if due:
            outcomes.update(f.result() for f in deliver_webhook.map(due))
            continue
        wait = delivery.next_due_in_s(settings)
        if wait is None or wait > linger_s:
            break
        time.sleep(min(max(wait, 0.05), POLL_S))
    print(", ".join(f"{n} {status}" for status, n in sorted(outcomes.items())) or "nothing was due")
    return dict(outcomes)
