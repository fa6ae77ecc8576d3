"""The KPL aggregation reference (aws-kinesis-agg, the AWS Labs library), for the interop test.

Reads JSON from stdin: {"records": [{"partition_key": str, "explicit_hash_key": str|null, "data": base64}]}.
`aggregate` (argv[1]) writes {"aggregates": [{"partition_key", "explicit_hash_key", "data": base64}]}: the records
aggregated as the KPL would, in as many aggregates as its size limit needs. `deaggregate` reads aggregates in the
same shape and writes {"records": [...]}: what the reference deaggregator finds in them.
"""
import base64
import json
import sys

from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records


def aggregate(records):
    aggregator = RecordAggregator()
    out = []

    def take(agg):
        if agg is not None and agg.get_num_user_records() > 0:
            pk, ehk, data = agg.get_contents()
            out.append({"partition_key": pk, "explicit_hash_key": ehk, "data": base64.b64encode(data).decode()})

    for r in records:
        take(aggregator.add_user_record(r["partition_key"], base64.b64decode(r["data"]), r.get("explicit_hash_key")))
    take(aggregator.clear_and_get())
    return {"aggregates": out}


def _b64(data):
    # The deaggregator gives each user record's data base64-encoded, as Lambda does, as bytes or text.
    return data.decode() if isinstance(data, bytes) else data


def deaggregate(aggregates):
    # The Lambda event shape the reference deaggregator reads.
    event_records = [
        {"kinesis": {"partitionKey": a["partition_key"], "data": a["data"], "sequenceNumber": str(i), "approximateArrivalTimestamp": 1795000000.0,
                     "kinesisSchemaVersion": "1.0"}}
        for i, a in enumerate(aggregates)
    ]
    return {"records": [
        {"partition_key": r["kinesis"]["partitionKey"], "data": _b64(r["kinesis"]["data"])}
        for r in deaggregate_records(event_records)
    ]}


if __name__ == "__main__":
    doc = json.load(sys.stdin)
    result = aggregate(doc["records"]) if sys.argv[1] == "aggregate" else deaggregate(doc["aggregates"])
    json.dump(result, sys.stdout)
