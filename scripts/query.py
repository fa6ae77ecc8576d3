"""`make query`: SQL over the local event store, the same SQL as in Athena (docs/event-store.md).

Syncs the archive bucket of the local stack (moto's S3) into a cache under the state directory, skipping the
objects it has already (same size and ETag), then runs the SQL in DuckDB over a view `events` with the columns
of the Glue table `events`, partition columns `event_type` and `dt` included. Offline: DuckDB's JSON reader is
built in, and extensions are never installed or loaded from the network.

    make query SQL="select type, count(*) from events group by 1"
    scripts/query.py [--no-sync] [--format table|csv|json] [--bucket B] [--endpoint URL] [--cache DIR] SQL

Exit codes: 0 done; 1 the SQL failed (the message says why); 2 usage, or no archive to query (moto unreachable
or the bucket missing, and nothing cached).
"""

import argparse
import base64
import csv
import datetime
import decimal
import json
import os
import pathlib
import sys

import duckdb

PREFIX = "events/"
# The Glue table's columns (template.yaml, ArchiveEventsTable), in its order, with DuckDB's type for each.
COLUMNS = {
    "specversion": "VARCHAR",
    "id": "VARCHAR",
    "source": "VARCHAR",
    "type": "VARCHAR",
    "subject": "VARCHAR",
    "time": "VARCHAR",
    "datacontenttype": "VARCHAR",
    "dataschema": "VARCHAR",
    "data": "JSON",
    "traceparent": "VARCHAR",
    "causationid": "VARCHAR",
    "partition_key": "VARCHAR",
    "shard_id": "VARCHAR",
    "sequence_number": "VARCHAR",
    "sub_sequence_number": "BIGINT",
    "arrival_time": "TIMESTAMP",
    "raw": "VARCHAR",
    "error": "VARCHAR",
}
# events/{type}/{yyyy}/{MM}/{dd}/{HH}/{object}: the partition columns, as Athena projects them.
KEY_PATTERN = r"events/([^/]+)/([0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9]{2})/[^/]+$"


class Unreachable(Exception):
    """The archive bucket could not be listed (moto down, no such bucket)."""


def fail(code, message):
    print(f"query: {message}", file=sys.stderr)
    sys.exit(code)


def sync(endpoint, bucket, cache):
    """Downloads the objects under events/ that the cache lacks or has in another version. Deletes nothing: moto
    keeps the bucket in memory, so a restarted moto lacks what the cache still has. Returns (fetched, kept)."""
    import boto3
    import botocore.config
    import botocore.exceptions

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=botocore.config.Config(
            s3={"addressing_style": "path"},
            connect_timeout=2,
            read_timeout=30,
            retries={"max_attempts": 1},
        ),
    )
    manifest_path = cache / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (FileNotFoundError, ValueError):
        manifest = {}
    fetched = kept = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
            for obj in page.get("Contents", []):
                key, size, etag = obj["Key"], obj["Size"], obj["ETag"]
                if not key.endswith(".ndjson.gz") or ".." in pathlib.PurePosixPath(key).parts:
                    continue
                local = cache / key
                known = manifest.get(key)
                if known == {"size": size, "etag": etag} and local.is_file() and local.stat().st_size == size:
                    kept += 1
                    continue
                local.parent.mkdir(parents=True, exist_ok=True)
                partial = local.with_name(local.name + ".part")
                s3.download_file(bucket, key, str(partial))
                partial.replace(local)
                manifest[key] = {"size": size, "etag": etag}
                fetched += 1
    except botocore.exceptions.EndpointConnectionError as e:
        raise Unreachable(f"nothing answers at {endpoint} ({e.__class__.__name__}): is the local stack up (make dev)?")
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "?")
        if code == "NoSuchBucket":
            raise Unreachable(f"no bucket {bucket} at {endpoint}: the stack has not provisioned it (make dev), or --bucket")
        raise Unreachable(f"listing s3://{bucket}/{PREFIX} at {endpoint} failed: {code}: {e}")
    finally:
        if fetched:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = manifest_path.with_name("manifest.json.part")
            tmp.write_text(json.dumps(manifest, indent=0, sort_keys=True))
            tmp.replace(manifest_path)
    return fetched, kept


def connect(cache):
    """DuckDB, offline, with the view `events` over the cache and Athena's json_extract_scalar."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    # Athena's json_extract_scalar (Trino) as DuckDB's json_extract_string: the example queries run on both.
    con.execute("create macro json_extract_scalar(j, p) as json_extract_string(j, p)")
    select = ", ".join(
        f'"{name}"::VARCHAR as "{name}"' if kind == "JSON" else f'"{name}"' for name, kind in COLUMNS.items()
    )
    files = sorted((cache / PREFIX).glob("**/*.ndjson.gz")) if (cache / PREFIX).is_dir() else []
    if files:
        glob = str((cache / PREFIX).resolve() / "**" / "*.ndjson.gz").replace("'", "''")
        columns = "{" + ", ".join(f"'{n}': '{t}'" for n, t in COLUMNS.items()) + "}"
        source = (
            f"read_json('{glob}', format = 'newline_delimited', compression = 'gzip', columns = {columns}, "
            "filename = '_object')"
        )
        con.execute(
            f"create view events as select {select}, "
            f"regexp_extract(replace(_object, '\\', '/'), '{KEY_PATTERN}', 1) as event_type, "
            f"regexp_extract(replace(_object, '\\', '/'), '{KEY_PATTERN}', 2) as dt "
            f"from {source}"
        )
    else:
        empty = ", ".join(
            f'null::{"VARCHAR" if kind == "JSON" else kind} as "{name}"' for name, kind in COLUMNS.items()
        )
        con.execute(f"create view events as select {empty}, null::VARCHAR as event_type, null::VARCHAR as dt where false")
    return con, len(files)


def plain(value):
    """A value as JSON can say it (timestamps to the millisecond, as Athena shows them)."""
    if isinstance(value, datetime.datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def cell(value):
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(plain(value))
    return str(value)


def write(names, rows, form, out):
    if form == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(names)
        w.writerows([cell(v) for v in row] for row in rows)
    elif form == "json":
        for row in rows:
            out.write(json.dumps(dict(zip(names, (plain(v) for v in row))), ensure_ascii=False) + "\n")
    else:
        text = [[cell(v) for v in row] for row in rows]
        widths = [max([len(n)] + [len(r[i]) for r in text]) for i, n in enumerate(names)]
        out.write("  ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip() + "\n")
        out.write("  ".join("-" * w for w in widths) + "\n")
        for r in text:
            out.write("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")
        out.write(f"({len(rows)} row{'' if len(rows) == 1 else 's'})\n")


def main():
    state = os.environ.get("TUBES_STATE_DIR") or ".local/dev"
    parser = argparse.ArgumentParser(
        prog="query.py",
        description="SQL over the local event store (the archive bucket, synced), in DuckDB: a view `events` "
        "with the Glue table's columns, so Athena's queries run here too.",
        epilog='example: scripts/query.py "select event_type, dt, count(*) from events group by all order by 2, 1"',
    )
    parser.add_argument("sql", nargs="?", help="the SQL (or --sql)")
    parser.add_argument("--sql", dest="sql_option", metavar="SQL", help="the SQL")
    parser.add_argument("--no-sync", action="store_true", help="query the cache as it is, without asking moto")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="json: one object a line")
    parser.add_argument(
        "--endpoint",
        default=f"http://127.0.0.1:{os.environ.get('TUBES_MOTO_PORT') or 4566}",
        help="moto's S3 (default: http://127.0.0.1:$TUBES_MOTO_PORT, 4566)",
    )
    parser.add_argument("--bucket", default="tubes-archivebucket", help="the local ArchiveBucket (%(default)s)")
    parser.add_argument(
        "--cache", default=os.path.join(state, "archive"), help="where the objects are kept (%(default)s)"
    )
    args = parser.parse_args()
    if args.sql and args.sql_option:
        parser.error("the SQL twice: give it as the argument or as --sql, not both")
    sql = (args.sql_option or args.sql or "").strip()
    if not sql:
        parser.error('no SQL: make query SQL="select type, count(*) from events group by 1"')

    cache = pathlib.Path(args.cache)
    if args.no_sync and not (cache / PREFIX).is_dir():
        fail(2, f"no cache in {cache} to query: run without --no-sync first")
    if not args.no_sync:
        try:
            fetched, kept = sync(args.endpoint, args.bucket, cache)
            print(f"query: s3://{args.bucket}/{PREFIX}: {fetched} objects fetched, {kept} cached already", file=sys.stderr)
        except Unreachable as e:
            if not (cache / PREFIX).is_dir():
                fail(2, f"{e}; and no cache in {cache}")
            print(f"query: {e}; querying the cache in {cache} as it is", file=sys.stderr)

    con, objects = connect(cache)
    if objects == 0:
        print(f"query: no archive objects in {cache}: the view `events` is empty", file=sys.stderr)
    try:
        result = con.sql(sql)
        if result is None:
            return
        names = result.columns
        rows = result.fetchall()
    except duckdb.Error as e:
        fail(1, f"the SQL failed: {e}")
    try:
        write(names, rows, args.format, sys.stdout)
    except BrokenPipeError:
        sys.stderr.close()


if __name__ == "__main__":
    main()
