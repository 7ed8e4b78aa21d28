"""Reads a hive-partitioned Parquet dataset back, independently of the code that wrote it.

    read_dataset.py duckdb ROOT      every row of ROOT/**/*.parquet, read by DuckDB
    read_dataset.py pyarrow ROOT     the same rows, read by pyarrow.dataset
    read_dataset.py metadata FILE    one file's Parquet metadata, from pyarrow

The readers print one JSON object per row, ordered by file name and then by row within the
file: the file's columns, then the hive partition columns (`date`, `hour`, ...) as strings,
then `filename`. Both readers format values the same way, so their outputs can be compared:

- TIMESTAMP WITH TIME ZONE (Parquet `isAdjustedToUTC`) as `YYYY-MM-DDTHH:MM:SS.ffffffZ` in
  UTC, always six fractional digits; a timestamp without a time zone the same without `Z`.
- lists as arrays, structs as objects (keys as in the file), maps as objects, NULL as null.
- dates and times in ISO 8601, decimals as strings, binary as base64, NaN and infinities as
  strings.

A root that holds no Parquet file, or does not exist, prints nothing. Run it with the
interpreter of the .tools/py virtual environment (.tools/bin/py-python) that
scripts/setup.sh installs.
"""

import base64
import datetime
import decimal
import glob
import json
import math
import os
import sys
import uuid

UTC = datetime.timezone.utc


def timestamp(v):
    if v.tzinfo is not None:
        v = v.astimezone(UTC)
        zone = "Z"
    else:
        zone = ""
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T"
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}{zone}"
    )


def to_json(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, datetime.datetime):
        return timestamp(v)
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, datetime.timedelta):
        return str(v)
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, dict):
        return {str(k): to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    raise TypeError(f"no JSON form for {type(v).__name__}: {v!r}")


def emit(row):
    sys.stdout.write(json.dumps(row, ensure_ascii=False, allow_nan=False))
    sys.stdout.write("\n")


def pattern(root):
    return os.path.join(root, "**", "*.parquet")


def read_duckdb(root):
    import duckdb

    # Parquet and ICU (time zones) are built into the wheel: nothing is ever downloaded.
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    # TIMESTAMPTZ values come out in the session's zone: make it UTC, whatever TZ says.
    con.execute("SET TimeZone = 'UTC'")
    zone = con.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    if zone != "UTC":
        raise RuntimeError(f"DuckDB's session time zone is {zone}, not UTC")
    glob_ = pattern(root)
    # read_parquet fails on a pattern that matches nothing: an empty dataset has no rows.
    if con.execute("SELECT count(*) FROM glob(?)", [glob_]).fetchone()[0] == 0:
        return
    quoted = "'" + glob_.replace("'", "''") + "'"
    cur = con.execute(
        f"SELECT * FROM read_parquet({quoted}, hive_partitioning = true, union_by_name = true,"
        " hive_types_autocast = false, filename = true, file_row_number = true)"
        " ORDER BY filename, file_row_number"
    )
    names = [d[0] for d in cur.description]
    keep = [n for n in names if n not in ("filename", "file_row_number")] + ["filename"]
    at = {n: i for i, n in enumerate(names)}
    while True:
        rows = cur.fetchmany(4096)
        if not rows:
            break
        for r in rows:
            emit({n: to_json(r[at[n]]) for n in keep})


def microseconds(t):
    """The type `t` with nanosecond timestamps made microsecond ones (Python has no finer)."""
    import pyarrow as pa

    if pa.types.is_timestamp(t) and t.unit == "ns":
        return pa.timestamp("us", tz=t.tz)
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(microseconds(t.value_type)))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(microseconds(t.value_type)), t.list_size)
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(microseconds(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(microseconds(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(
            t.key_field.with_type(microseconds(t.key_type)),
            t.item_field.with_type(microseconds(t.item_type)),
        )
    return t


def read_pyarrow(root):
    import pyarrow as pa
    import pyarrow.dataset as ds

    # The same files DuckDB's glob matches (it does not skip hidden names either).
    paths = sorted(
        p
        for p in glob.glob(pattern(root), recursive=True, include_hidden=True)
        if os.path.isfile(p)
    )
    if not paths:
        return
    # The partition fields, in path order, all strings ("03" stays "03", as with DuckDB).
    fields = []
    for p in paths:
        for segment in os.path.relpath(os.path.dirname(p), root).split(os.sep):
            name, eq, _ = segment.partition("=")
            if eq and name not in fields:
                fields.append(name)
    partitioning = ds.partitioning(
        pa.schema([(name, pa.string()) for name in fields]), flavor="hive"
    )
    dataset = ds.dataset(
        paths, format="parquet", partitioning=partitioning, partition_base_dir=root
    )
    if not isinstance(dataset, ds.FileSystemDataset):
        raise TypeError(f"expected a FileSystemDataset, got {type(dataset).__name__}")
    file_fields = [f.name for f in dataset.schema if f.name not in fields]
    by_path = {f.path: f for f in dataset.get_fragments()}
    for path in paths:
        fragment = by_path[path]
        table = fragment.to_table(schema=dataset.schema, columns=file_fields)
        table = table.cast(
            pa.schema([f.with_type(microseconds(f.type)) for f in table.schema]), safe=False
        )
        # Partition values come from the fragment's path, as with DuckDB.
        keys = ds.get_partition_keys(fragment.partition_expression)
        for r in table.to_pylist(maps_as_pydicts="lossy"):
            out = {n: to_json(r[n]) for n in file_fields}
            for n in fields:
                v = keys.get(n)
                out[n] = None if v is None else str(v)
            out["filename"] = path
            emit(out)


def metadata(path):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    md = pf.metadata

    def uniform(values):
        """One value when every row group agrees, else the value of each row group."""
        return values[0] if values and all(v == values[0] for v in values) else values

    columns = {}
    for c in range(md.num_columns):
        chunks = [md.row_group(g).column(c) for g in range(md.num_row_groups)]
        col = md.schema.column(c)
        encodings = []
        for ch in chunks:
            for e in ch.encodings:
                if e not in encodings:
                    encodings.append(e)
        stats = [ch.statistics for ch in chunks]
        columns[col.path] = {
            "physical_type": col.physical_type,
            "logical_type": str(col.logical_type),
            "max_definition_level": col.max_definition_level,
            "max_repetition_level": col.max_repetition_level,
            "compression": uniform([ch.compression for ch in chunks]),
            "encodings": encodings,
            # a dictionary page in every row group
            "dictionary": bool(chunks) and all(ch.has_dictionary_page for ch in chunks),
            "dictionary_per_row_group": [ch.has_dictionary_page for ch in chunks],
            # statistics in every row group, and which parts of them
            "statistics": bool(chunks) and all(s is not None for s in stats),
            "min_max": bool(chunks) and all(s is not None and s.has_min_max for s in stats),
            "null_count": (
                sum(s.null_count for s in stats)
                if chunks and all(s is not None and s.has_null_count for s in stats)
                else None
            ),
            "min": [to_json(s.min) if s is not None and s.has_min_max else None for s in stats],
            "max": [to_json(s.max) if s is not None and s.has_min_max else None for s in stats],
            "compressed_bytes": sum(ch.total_compressed_size for ch in chunks),
            "uncompressed_bytes": sum(ch.total_uncompressed_size for ch in chunks),
        }
    kv = md.metadata or {}
    out = {
        "num_rows": md.num_rows,
        "num_columns": md.num_columns,
        "num_row_groups": md.num_row_groups,
        "rows_per_row_group": [md.row_group(g).num_rows for g in range(md.num_row_groups)],
        "created_by": md.created_by,
        "format_version": md.format_version,
        "key_value_metadata": sorted(k.decode("utf-8", "replace") for k in kv),
        "arrow_schema": str(pf.schema_arrow),
        "columns": columns,
    }
    emit(out)


def main():
    sys.stdout.reconfigure(encoding="utf-8")
    if len(sys.argv) != 3 or sys.argv[1] not in ("duckdb", "pyarrow", "metadata"):
        sys.exit("usage: read_dataset.py duckdb|pyarrow ROOT | metadata FILE")
    mode, arg = sys.argv[1], sys.argv[2]
    if mode == "duckdb":
        read_duckdb(arg)
    elif mode == "pyarrow":
        read_pyarrow(arg)
    else:
        metadata(arg)


if __name__ == "__main__":
    main()
