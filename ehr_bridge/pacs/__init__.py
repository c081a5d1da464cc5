"""External PACS: query/retrieve of a consult patient's priors, and signed reports stored back.

``client`` speaks DIMSE, ``priors`` finds and pulls, ``store_back`` sends reports (and
subscribes to ``consult.sign``, so importing this package registers it).
"""

from .client import PacsFailed, PacsUnavailable
from .priors import (
    PriorStudy,
    pacs_for_organisation,
    priors_find,
    priors_pull,
    pull_run,
    pull_status,
    pulls_due,
    pulls_of,
)
from .store_back import (
    SendResult,
    build_report_pdf_dataset,
    report_send,
    report_send_due,
    report_send_enqueue,
)

__all__ = [
    "PacsFailed",
    "PacsUnavailable",
    "PriorStudy",
    "SendResult",
    "build_report_pdf_dataset",
    "pacs_for_organisation",
    "priors_find",
    "priors_pull",
    "pull_run",
    "pulls_due",
    "pull_status",
    "pulls_of",
    "report_send",
    "report_send_due",
    "report_send_enqueue",
]
