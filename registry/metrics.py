"""Project gauges beside django-prometheus's own, read when Prometheus scrapes ``/metrics``."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from prometheus_client import Gauge

logger = logging.getLogger(__name__)


def _audit_backlog() -> float:
    from . import audit

    try:
        return float(audit.pending_count())
    except DatabaseError:  # the scrape still answers; the database's own alert covers this
        logger.warning("audit backlog unavailable: the database did not answer")
        return float("nan")


AUDIT_UNSEALED = Gauge(
    "huizhen_audit_unsealed_rows",
    "Audit rows written but not yet sealed into the hash chain (grows if the sealer stops).",
)
AUDIT_UNSEALED.set_function(_audit_backlog)
