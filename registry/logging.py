"""Log records carry the request ID. Logs never carry names, ID numbers, tokens or secrets."""

import logging

from . import context


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = context.current().request_id
        return True
