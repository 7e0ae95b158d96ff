"""File helpers shared by every part of jcxr: hashing, atomic writes, strict JSON, CSV reading."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import os
import tempfile
from pathlib import Path


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place. The file
    gets the permissions a plain ``open()`` would give (mkstemp's are owner-only: a shared
    report or results file must stay readable by the group)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    """The process umask, read once at import (setting it is process-wide: never from threads)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_npz(path: str | os.PathLike, columns: dict) -> None:
    """``columns`` as an npz, written whole and then renamed: a kill never leaves half a file
    under the final name."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **columns)
    atomic_write_bytes(path, buffer.getvalue())


def json_ready(value):
    """Nested dicts/lists/tuples/numpy values as strict-JSON Python values (non-finite -> None)."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return json_ready(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def read_csv(path: str | os.PathLike) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """``(header, [(line, row), ...])`` of a CSV file (``.gz`` too), UTF-8 with or without a
    byte-order mark; ``line`` counts the header as line 1, as an editor shows it.

    Raises ``ValueError`` naming the file (and line) for bytes that are not UTF-8 and for a file
    without a header row.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: line {line}: byte {raw[error.start]:#04x} is not UTF-8; save the file as "
            "UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    for row in reader:
        rows.append((reader.line_num, row))
    if not rows or not any(field.strip() for field in rows[0][1]):
        raise ValueError(f"{path}: empty file; expected a header row")
    header = [name.strip() for name in rows[0][1]]
    return header, [(line, row) for line, row in rows[1:] if any(f.strip() for f in row)]
