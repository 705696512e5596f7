"""The job's own `OUT/manifest.json`: every recording's outcome (node, attempt, counts, or the one-line
reason it failed) and identity, the cluster it ran on and its start-up cost, the generator actors' batch
sizes. Both engines write it the same way (`run.batch.JobRecord`); the Ray driver adds the cluster and
the generator actors.
"""

from __future__ import annotations

from ..run.batch import JOB_KIND, JobRecord
from ..run.batch import STATES as OUTCOMES

__all__ = ["JOB_KIND", "OUTCOMES", "JobRecord"]
