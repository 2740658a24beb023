"""Metrics read from the database at scrape time, so they are right whichever processes run the workers."""

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.catalog import list_models
from service.jobspec.status import JobStatus
from service.storage.db import utcnow
from service.storage.orm import Job, Worker

DURATION_BUCKETS = (10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)


class DatabaseCollector(Collector):
    """Jobs by status, queue depth, job durations by architecture, lease takeovers and live workers."""

    def __init__(self, factory: sessionmaker[Session], *, worker_alive_seconds: float) -> None:
        self.factory = factory
        self.worker_alive_seconds = worker_alive_seconds

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("convlab_database_up", "1 if the database answered the last scrape, else 0.")
        try:
            with self.factory() as session:
                families = list(self._families(session))
        except Exception:  # a scrape must answer even when the database does not; the gauge says so
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, session: Session) -> Iterator[Metric]:
        counts: dict[JobStatus, int] = {
            status: count for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status))
        }
        jobs = GaugeMetricFamily("convlab_jobs", "Jobs in the database, by status.", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status, 0))
        yield jobs
        depth = GaugeMetricFamily("convlab_queue_depth", "Jobs queued and waiting for a worker.")
        depth.add_metric([], counts.get(JobStatus.queued, 0))
        yield depth
        yield self._durations(session)
        takeovers = CounterMetricFamily(
            "convlab_lease_takeovers", "Times a worker took over a job whose worker had vanished (jobs kept)."
        )
        takeovers.add_metric([], session.scalar(select(func.coalesce(func.sum(Job.lost_leases), 0))) or 0)
        yield takeovers
        since = utcnow() - timedelta(seconds=self.worker_alive_seconds)
        alive = GaugeMetricFamily("convlab_workers_alive", "Workers with a heartbeat in the last lease periods.")
        alive.add_metric([], session.scalar(select(func.count()).where(Worker.last_seen >= since)) or 0)
        yield alive

    def _durations(self, session: Session) -> Metric:
        known = {m.name for m in list_models()}
        rows = session.execute(
            select(Job.spec["architecture"].as_string(), Job.started_at, Job.finished_at).where(
                Job.status == JobStatus.succeeded, Job.started_at.is_not(None), Job.finished_at.is_not(None)
            )
        )
        observed: dict[str, list[float]] = {}
        for architecture, started, finished in rows:
            label = architecture if architecture in known else "other"
            observed.setdefault(label, []).append((finished - started).total_seconds())
        family = HistogramMetricFamily(
            "convlab_job_duration_seconds",
            "Wall time from a job's start to its success, by architecture.",
            labels=["architecture"],
        )
        for architecture, values in sorted(observed.items()):
            buckets = [(str(bound), sum(v <= bound for v in values)) for bound in DURATION_BUCKETS]
            buckets.append(("+Inf", len(values)))
            family.add_metric([architecture], buckets, sum(values))
        return family
