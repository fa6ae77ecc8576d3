"""The event-status view (GET /events/{source}/{id}), checked on the SAM-expanded template.

The query function reads the consumers' idempotency records; `EVENT_CONSUMERS` names each consumer and the event
types it takes, so that one that has not reached an event yet shows as pending. Fails when
- a function that keeps idempotency records (IDEMPOTENCY_TABLE) and reads the stream (binary
  tubes-consumer-NAME) is missing from EVENT_CONSUMERS, or EVENT_CONSUMERS names one that is not such a function;
- a consumer's types in EVENT_CONSUMERS differ from its mapping's FilterCriteria (`data.type`);
- the query function cannot read the idempotency table (`dynamodb:BatchGetItem`).

usage: check_event_status.py EXPANDED_TEMPLATE_JSON
"""

import json
import sys

QUERY_BINARY = "tubes-query"
CONSUMER_PREFIX = "tubes-consumer-"


def filter_types(mapping):
    """The event types a mapping's filters let through; None without a filter (every type)."""
    filters = mapping["Properties"].get("FilterCriteria", {}).get("Filters", [])
    if not filters:
        return None
    types = set()
    for f in filters:
        types |= set(json.loads(f["Pattern"]).get("data", {}).get("type", []))
    return types


def main(path):
    resources = json.load(open(path))["Resources"]
    problems = []
    functions = {n: r for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}

    def binary(name):
        return functions[name].get("Metadata", {}).get("BuildProperties", {}).get("Binary", "")

    def variables(name):
        return functions[name]["Properties"].get("Environment", {}).get("Variables", {})

    mappings = {}
    for mapping in resources.values():
        if mapping["Type"] == "AWS::Lambda::EventSourceMapping":
            mappings[mapping["Properties"].get("FunctionName", {}).get("Ref")] = mapping
    tracked = {}
    for name in functions:
        if binary(name).startswith(CONSUMER_PREFIX) and "IDEMPOTENCY_TABLE" in variables(name) and name in mappings:
            tracked[binary(name)[len(CONSUMER_PREFIX):]] = filter_types(mappings[name])

    queries = [n for n in functions if binary(n) == QUERY_BINARY]
    for query in queries:
        spec = variables(query).get("EVENT_CONSUMERS")
        if spec is None:
            problems.append(f"{query}: no EVENT_CONSUMERS")
            continue
        named = {}
        for entry in spec.replace(";", " ").split():
            consumer, _, types = entry.partition("=")
            named[consumer] = set(types.split(","))
        for consumer in sorted(set(tracked) - set(named)):
            problems.append(f"{query}: EVENT_CONSUMERS lacks {consumer}, which keeps idempotency records")
        for consumer in sorted(set(named) - set(tracked)):
            problems.append(f"{query}: EVENT_CONSUMERS names {consumer}, no consumer with idempotency records")
        for consumer in sorted(set(named) & set(tracked)):
            if tracked[consumer] is not None and named[consumer] != tracked[consumer]:
                problems.append(
                    f"{query}: EVENT_CONSUMERS gives {consumer} {sorted(named[consumer])}, "
                    f"its mapping takes {sorted(tracked[consumer])}"
                )
        if "IDEMPOTENCY_TABLE" not in variables(query):
            problems.append(f"{query}: no IDEMPOTENCY_TABLE")
        policy_text = json.dumps(
            [r for n, r in resources.items() if r["Type"] == "AWS::IAM::Role" and n.startswith(query)]
        )
        if "dynamodb:BatchGetItem" not in policy_text:
            problems.append(f"{query}: its role cannot BatchGetItem the idempotency records")

    for p in problems:
        print(f"check_event_status: {p}", file=sys.stderr)
    if problems or not queries:
        sys.exit(1)
    print(f"check_event_status: the query function names the {len(tracked)} consumers with idempotency records and their types")


if __name__ == "__main__":
    main(*sys.argv[1:])
