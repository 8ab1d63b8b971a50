"""The loops edge: everything that runs as a loop or on a clock.

Job workers, the webhook deliverer, the outbox dispatcher, the scheduler (and the schedules it runs:
monitor, healer sweeps, Pulse checks, payouts, audit checkpoints) and the ``levqor up`` supervisor.
Like ``api/``, this package sits on top of the layers: it imports agents and tools, opens sessions and
commits (``memory.db``), and nothing below imports it. ``workers.wiring`` collects what the features
declare (their ``SCHEDULES`` and ``REACTIONS``).
"""
