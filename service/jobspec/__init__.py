"""The job vocabulary, on the ground floor: specs (request and resolved), statuses and stop reasons, dotted paths.

It imports neither torch nor SQLAlchemy, so the wire models and the thin client can use it.
"""

from service.jobspec.spec import JobRequest, JobSpec
from service.jobspec.status import FitStatus, JobStatus, StopReason, SweepStatus

__all__ = ["FitStatus", "JobRequest", "JobSpec", "JobStatus", "StopReason", "SweepStatus"]
