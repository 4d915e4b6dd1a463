"""Log lines that cannot be forged: user text (prompts, names, file names, library errors quoting
them) may hold line breaks; escaped here, one record stays one line. Tracebacks still follow on
their own lines."""

from __future__ import annotations

import logging


class OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not message.isprintable():
            escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
            record = logging.makeLogRecord({**record.__dict__, "msg": escaped, "args": None})
        return super().format(record)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int, format: str = LOG_FORMAT) -> None:
    """The process's logging: to stderr, one line per record (configured once, by the entry point)."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(format))
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin, each start
