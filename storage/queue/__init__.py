"""Work queues: where a job runs (``routing``), what a job is (``tasks``: kind -> function(st, ctx,
**params) with JSON params), and who carries it (``dispatch``: in this process, or on PostgreSQL
through procrastinate to the agent of the host that owns the volume, ``pq``)."""
