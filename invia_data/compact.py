"""Compacting a recording: the recorder writes a file per instrument and kind every few
seconds (a ``kill -9`` then loses one batch at most), which over a day is thousands of small
files, slow for every reader. :func:`compact_recording` merges the files of each day partition
into a few large ones (row groups of up to a million rows), in receive order.

Crash-safe without a journal: a merged file is written under a hidden name, renamed into
place, and only then are its source files removed. The merged file's Parquet metadata lists
its sources, so a compaction stopped between the rename and the removals is finished by the
next run (or by a recorder starting on the folder) before anything else; until then a reader
could see those rows twice, never lose them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InvalidArgument
from .record import file_options, holds_recording

SOURCES_KEY = b"invia_data.compacted_from"
ROWS_PER_FILE = 20_000_000
ROWS_PER_GROUP = 1_000_000
SUMMARY_COLUMNS = ["kind", "partition", "date", "files", "merged_into", "rows"]


def compact_recording(path: str | os.PathLike[str], *, today: bool = False,
                      clock: Callable[[], float] = time.time) -> pd.DataFrame:
    """Merge the small files of each day of the recording at ``path`` into a few large ones.

    Days before the current UTC day are compacted; ``today=True`` takes the current day too
    (safe while a recorder writes it: only the files merged are removed, the recorder's new
    ones stay). Returns one row per partition merged: ``kind``, ``partition`` (such as
    ``symbol=SBER``), ``date``, ``files`` (merged), ``merged_into`` (files now) and ``rows``;
    ``.attrs["left_today"]``: today's partitions left unmerged.
    Readers (pandas, DuckDB, polars, Dask, :func:`invia_data.read_recording`, the replay) see
    the same rows before and after."""
    from .replay import _recording_root, inner_recordings

    if not isinstance(today, bool):
        raise InvalidArgument(f"today must be True or False, got {today!r}"[:200])
    root = _recording_root(path)
    if not holds_recording(root):
        raise InvalidArgument(f"{str(path)[:200]!r} holds no recording (no kind=... folders)"
                              + (inner_recordings(root) or ": give the folder that invia-data "
                                 "record --out (or record=) wrote"))
    return compact_days(root, None if today else clock())


def compact_days(root: Path, before: float | None,
                 stopped: Callable[[], bool] = lambda: False) -> pd.DataFrame:
    """:func:`compact_recording` of the days before the UTC day of ``before`` (unix seconds;
    None: every day); ``stopped`` is asked between partitions (a closing recorder)."""
    finish_compactions(root)
    current = (None if before is None
               else pd.Timestamp(before, unit="s", tz="UTC").strftime("%Y-%m-%d"))
    rows = []
    left = 0   # partitions of today (or later) with files to merge, left as asked
    for folder in sorted(root.glob("kind=*/*=*/date=*")):
        day = folder.name.split("=", 1)[1]
        if stopped():
            break
        files = sorted(folder.glob("part-*.parquet"))
        if not folder.is_dir() or len(files) < 2:
            continue
        if current is not None and day >= current:
            left += 1
            continue
        outputs, merged_rows = _compact_folder(folder, files)
        rows.append({"kind": folder.parts[-3].split("=", 1)[1], "partition": folder.parts[-2],
                     "date": day, "files": len(files), "merged_into": outputs,
                     "rows": merged_rows})
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS).astype(
        {"files": "int64", "merged_into": "int64", "rows": "int64"})
    summary.attrs["left_today"] = left
    return summary


def finish_compactions(root: Path) -> int:
    """Remove the source files that merged files list and that are still there (a compaction
    stopped after its rename). Returns how many were removed."""
    removed = 0
    for merged in root.glob("kind=*/*=*/date=*/part-*-merged-*.parquet"):
        for name in _sources(merged):
            source = merged.parent / name
            if source != merged and source.exists():
                source.unlink()
                removed += 1
    return removed


def _sources(merged: Path) -> list[str]:
    metadata = pq.read_schema(merged).metadata or {}
    names = orjson.loads(metadata.get(SOURCES_KEY, b"[]"))
    return [name for name in names if isinstance(name, str) and "/" not in name]


def _compact_folder(folder: Path, files: list[Path]) -> tuple[int, int]:
    """Merge ``files`` (in name order, which is receive order) into files of up to
    ``ROWS_PER_FILE`` rows. Returns (files written, rows)."""
    kind = folder.parts[-3].split("=", 1)[1]
    schemas = [pq.read_schema(f) for f in files]
    schema = pa.unify_schemas([s.remove_metadata() for s in schemas],
                              promote_options="permissive")
    # the newest file's metadata (pandas reads its dtypes from it), less an earlier merge's list
    kept = {k: v for k, v in (schemas[-1].metadata or {}).items() if k != SOURCES_KEY}
    schema = schema.with_metadata(kept)
    groups: list[list[Path]] = [[]]
    counted = 0
    for file in files:
        rows = pq.read_metadata(file).num_rows
        if groups[-1] and counted + rows > ROWS_PER_FILE:
            groups.append([])
            counted = 0
        groups[-1].append(file)
        counted += rows
    total = 0
    for group in groups:
        total += _merge(folder, kind, group, schema)
    return len(groups), total


def _merge(folder: Path, kind: str, sources: list[Path], schema: pa.Schema) -> int:
    first = sources[0].name.split("-")[1]
    name = f"part-{first}-merged-{os.getpid()}-{time.time_ns() % 10**9:09d}.parquet"
    temporary = folder / f".{name}.tmp"
    names = [source.name for source in sources]
    options: dict[str, Any] = file_options(kind, schema)
    written = 0
    try:
        listed = schema.with_metadata({**(schema.metadata or {}),
                                       SOURCES_KEY: orjson.dumps(names)})
        with pq.ParquetWriter(temporary, listed,
                              compression="zstd", **options) as writer:
            pending: list[pa.Table] = []
            held = 0
            for source in sources:
                table = _conform(pq.read_table(source), schema)
                pending.append(table)
                held += table.num_rows
                if held >= ROWS_PER_GROUP:
                    writer.write_table(pa.concat_tables(pending), row_group_size=ROWS_PER_GROUP)
                    written += held
                    pending, held = [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROWS_PER_GROUP)
                written += held
        os.replace(temporary, folder / name)
    finally:
        if temporary.exists():
            temporary.unlink()
    _remove(sources)   # the merged file holds them now
    return written


def _remove(sources: list[Path]) -> None:
    for source in sources:
        source.unlink(missing_ok=True)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns in its order (a column an older file lacks: nulls)."""
    columns = [table.column(field.name).cast(field.type) if field.name in table.column_names
               else pa.nulls(table.num_rows, field.type) for field in schema]
    return pa.table(columns, schema=schema.remove_metadata())


__all__ = ["compact_days", "compact_recording", "finish_compactions"]
