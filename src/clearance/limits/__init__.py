"""Usage limits: requests and tokens per minute, tokens per day, spend per month.

``tables`` and ``service`` keep the limits an operator sets; ``rules`` compiles
them into the snapshot (which limits bind a principal on a model); ``counters``
counts use in the process or, shared by replicas, on Redis; ``enforce`` is what
the request path calls: ``check`` before the upstream call, ``account`` after
it; ``usage`` reports use from the audit log.
"""
