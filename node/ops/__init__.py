"""Operations: what a process is doing and how it has done so far.

* :mod:`node.ops.current` -- running operations (``currentOp``/``killOp``), the op of the
  calling context, and the interrupt that ``killOp`` raises at the engine's interrupt points.
* :mod:`node.ops.stats` -- per-command counters, latency histograms, ``opcounters``, ``top``.
* :mod:`node.ops.hook` -- the dispatcher's hook: one :class:`~node.ops.current.Op` per
  command, bookkeeping when its reply is known, the slow-operation log (``--slowms``).
* :mod:`node.ops.metrics` -- the Prometheus endpoint (``--metrics-port``) every process serves.
* :mod:`node.ops.progress` -- progress of long work (terminal bar or periodic log lines).
"""
