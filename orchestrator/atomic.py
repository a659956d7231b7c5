"""Files written whole or not at all: the text goes to a hidden file beside `path`, then is renamed
over it (rename is atomic on POSIX), so a reader (the medium, `down`, another verb) never sees
half a file and a crash mid-write leaves the old one."""

from __future__ import annotations

import os
from pathlib import Path


def write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` (UTF-8), created with permission `mode` (before the umask).
    Errors: OSError as open/rename raise it (the directory must exist)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
