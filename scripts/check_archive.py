"""The event store, checked on the SAM-expanded template (docs/event-store.md).

Fails when
- a Glue table with partition projection lacks an event type of the catalogue (schemas/*.json but event.json) or
  `_undecodable` in its `event_type` enum: Athena would not see that type's objects; or names a type the
  catalogue does not have;
- a partition key has no projection type or no place in `storage.location.template`;
- the archive (binary tubes-archive) reads the stream through a filter, or bisects a failing batch: its object
  keys derive from the batch's first sequence number, so a retry must be the same batch.

usage: check_archive.py EXPANDED_TEMPLATE_JSON [SCHEMAS_DIR]
"""

import json
import pathlib
import sys

ARCHIVE_BINARY = "tubes-archive"
UNDECODABLE = "_undecodable"


def template_text(value):
    """A string property as written: the text of an `Fn::Sub`, else the value."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub[0] if isinstance(sub, list) else sub
    return value


def main(path, schemas="schemas"):
    resources = json.load(open(path))["Resources"]
    catalogue = {p.stem for p in pathlib.Path(schemas).glob("*.json")} - {"event"}
    problems = []

    tables = 0
    for name, table in resources.items():
        if table["Type"] != "AWS::Glue::Table":
            continue
        table_input = table["Properties"]["TableInput"]
        params = table_input.get("Parameters", {})
        if str(params.get("projection.enabled", "false")).lower() != "true":
            continue
        tables += 1
        location = str(template_text(params.get("storage.location.template", "")))
        for key in table_input.get("PartitionKeys", []):
            column = key["Name"]
            if f"projection.{column}.type" not in params:
                problems.append(f"{name}: partition key {column} without projection.{column}.type")
            # Inside Fn::Sub a literal ${x} is written ${!x}.
            if "${!" + column + "}" not in location and "${" + column + "}" not in location:
                problems.append(f"{name}: storage.location.template has no place for {column}")
        if "projection.event_type.values" in params:
            values = {v.strip() for v in str(params["projection.event_type.values"]).split(",")}
            for missing in sorted((catalogue | {UNDECODABLE}) - values):
                problems.append(f"{name}: event type {missing} missing from projection.event_type.values")
            for extra in sorted(values - catalogue - {UNDECODABLE}):
                problems.append(f"{name}: projection.event_type.values names {extra}, not in {schemas}/")

    archives = [
        n
        for n, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and r.get("Metadata", {}).get("BuildProperties", {}).get("Binary") == ARCHIVE_BINARY
    ]
    for mapping in resources.values():
        if mapping["Type"] != "AWS::Lambda::EventSourceMapping":
            continue
        props = mapping["Properties"]
        function = props.get("FunctionName", {}).get("Ref")
        if function not in archives:
            continue
        if props.get("FilterCriteria"):
            problems.append(f"{function}: the archive reads the stream through a filter (it must see every record)")
        if props.get("BisectBatchOnFunctionError"):
            problems.append(f"{function}: the archive bisects failing batches (its keys need the same batch again)")

    for p in problems:
        print(f"check_archive: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(
        f"check_archive: {tables} projected table(s) cover the {len(catalogue)} catalogue types and {UNDECODABLE}; "
        f"{len(archives)} archive function(s) read the whole stream, without bisect"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
