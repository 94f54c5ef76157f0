"""JSON-only RQ: every queue, job, worker and scheduler of tokensvc uses these.

RQ and rq-scheduler pickle by default, and unpickling a payload someone put on
the queue runs their code. Here every job is JSON: a pickled payload fails to
load and is never executed. rq-scheduler 0.14 has no serializer option; it
builds jobs through its ``job_class``, so :class:`JSONJob` makes them JSON.
"""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer
from rq_scheduler import Scheduler  # type: ignore[import-untyped]

QUEUE_NAME = "tokensvc"


class JSONJob(Job):
    """A job that is always (de)serialised as JSON, whatever its creator asked."""

    def __init__(self, id: str | None = None, connection: Any = None, serializer: Any = None):
        super().__init__(id, connection=connection, serializer=JSONSerializer)


class JSONQueue(Queue):
    job_class = JSONJob

    def __init__(self, name: str = QUEUE_NAME, **kwargs: Any) -> None:
        kwargs["serializer"] = JSONSerializer
        kwargs.setdefault("job_class", JSONJob)
        super().__init__(name, **kwargs)


def queue(connection: redis.Redis) -> JSONQueue:
    return JSONQueue(QUEUE_NAME, connection=connection)


def worker(connection: redis.Redis) -> Worker:
    return Worker(
        [queue(connection)],
        connection=connection,
        serializer=JSONSerializer,
        job_class=JSONJob,
        queue_class=JSONQueue,
    )


def scheduler(connection: redis.Redis, poll_interval: float) -> Scheduler:
    return Scheduler(
        queue_name=QUEUE_NAME,
        connection=connection,
        interval=poll_interval,
        job_class=JSONJob,
        queue_class=JSONQueue,
    )
