"""Background research jobs: a bounded FIFO run in worker threads, progress on the event loop.

* `manager.JobManager`: submit / cancel / subscribe / wait; restart recovery.
* `model`: job states, `JobEvent`, `JobRecord`, `JobCancelled`, `JobQueueFull`.
* `store`: the `optimization_jobs` rows.
* `optimize_job`: the "optimize" kind (walk-forward optimisation, results stored).
"""

from core.jobs.manager import JobContext, JobManager
from core.jobs.model import (
                             CANCELLED,
                             DONE,
                             FAILED,
                             INTERRUPTED,
                             QUEUED,
                             RUNNING,
                             JobCancelled,
                             JobEvent,
                             JobQueueFull,
                             JobRecord,
)

__all__ = ["CANCELLED", "DONE", "FAILED", "INTERRUPTED", "QUEUED", "RUNNING", "JobCancelled", "JobContext",
           "JobEvent", "JobManager", "JobQueueFull", "JobRecord"]
