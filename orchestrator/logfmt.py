"""Log lines that keep their structured fields: `log.info("radio created", extra={"radio": n})`
prints `... radio created radio=mpl0001-0` (logfmt-style key=value, values quoted when they hold
spaces), where the stdlib's default format would drop everything but the message."""

from __future__ import annotations

import logging
import os

# What every LogRecord carries by itself: anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _value(v: object) -> str:
    text = str(v)
    return f'"{text}"' if (not text or any(c in text for c in ' "=')) else text


class FieldsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if fields:
            line += " " + " ".join(f"{k}={_value(v)}" for k, v in fields.items())
        return line


def setup(default_level: str = "WARNING", prefix: str = "") -> None:
    """Log to stderr at $MESHPAY_LOG (default `default_level`), fields kept; quiet by default."""
    handler = logging.StreamHandler()
    handler.setFormatter(FieldsFormatter(f"%(asctime)s {prefix}%(levelname)s %(name)s %(message)s"))
    level = os.environ.get("MESHPAY_LOG", default_level).upper()
    logging.basicConfig(level=level if level in logging.getLevelNamesMapping() else default_level,
                        handlers=[handler], force=True)
