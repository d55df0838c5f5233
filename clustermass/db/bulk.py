"""Bulk writes: COPY into a temporary table, then one INSERT ... ON CONFLICT.

Runs inside the caller's transaction, so a failure anywhere leaves nothing half-written.
Identifiers come from our own code (table/column names), never from user input; they are
still quoted with psycopg2.sql.Identifier.
"""

from __future__ import annotations

import io
import json
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg2 import sql
from sqlalchemy import Connection


def _csv_payload(df: pd.DataFrame, json_columns: Sequence[str]) -> io.StringIO | io.BytesIO:
    out = df.copy(deep=False)
    for col in json_columns:
        out[col] = [json.dumps(v, default=_json_default) if v is not None else None for v in out[col]]
    try:  # pyarrow's C++ CSV writer: ~10x faster than pandas; floats round-trip, nulls unquoted-empty
        table = pa.Table.from_pandas(out, preserve_index=False)
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
    except (pa.ArrowException, TypeError, ValueError):  # mixed-type object columns: pandas copes
        buf = io.StringIO()
        out.to_csv(buf, index=False, header=False, na_rep="", float_format="%.17g")
    buf.seek(0)
    return buf


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def copy_upsert(
    conn: Connection,
    table: str,
    df: pd.DataFrame,
    conflict: Sequence[str] | None = None,
    update: Sequence[str] | None = None,
    json_columns: Sequence[str] = (),
    returning: str | None = None,
) -> list[tuple] | int:
    """COPY `df` into `table` through a temp table, upserting on the `conflict` columns.

    With `update` None and `conflict` given, conflicting rows are left alone (DO NOTHING);
    with `update`, those columns take the new values. Returns the rows of `returning`
    (a column name) for inserted/updated rows, else the number of rows written.
    """
    cols = list(df.columns)
    raw = conn.connection.driver_connection
    tmp = sql.Identifier(f"_cmcat_copy_{table}")
    ident_cols = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    with raw.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {tmp} AS SELECT {cols} FROM {table} WITH NO DATA").format(
                tmp=tmp, cols=ident_cols, table=sql.Identifier(table)
            )
        )
        cur.execute(sql.SQL("TRUNCATE {tmp}").format(tmp=tmp))
        cur.copy_expert(
            sql.SQL("COPY {tmp} ({cols}) FROM STDIN WITH (FORMAT csv)").format(tmp=tmp, cols=ident_cols).as_string(cur),
            _csv_payload(df, json_columns),
        )
        stmt = sql.SQL("INSERT INTO {table} ({cols}) SELECT {cols} FROM {tmp}").format(
            table=sql.Identifier(table), cols=ident_cols, tmp=tmp
        )
        if conflict:
            target = sql.SQL(", ").join(sql.Identifier(c) for c in conflict)
            if update:
                sets = sql.SQL(", ").join(
                    sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in update
                )
                stmt += sql.SQL(" ON CONFLICT ({t}) DO UPDATE SET {s}").format(t=target, s=sets)
            else:
                stmt += sql.SQL(" ON CONFLICT ({t}) DO NOTHING").format(t=target)
        if returning:
            stmt += sql.SQL(" RETURNING {r}").format(r=sql.Identifier(returning))
        cur.execute(stmt)
        result = cur.fetchall() if returning else cur.rowcount
        cur.execute(sql.SQL("DROP TABLE {tmp}").format(tmp=tmp))
    return result
