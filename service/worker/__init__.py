"""The worker: claim a queued job, train it under a lease with a heartbeat, record what it reports, repeat.

A closed subsystem: it talks to the API only through the database. `leases` holds the claim and the fenced
writes, `attempts` what one attempt records, `heartbeat` and `recorder` the threads and callbacks of a run,
`loop` the process itself.
"""

from service.worker.loop import JobWorker, run_worker

__all__ = ["JobWorker", "run_worker"]
