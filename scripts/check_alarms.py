"""Checks that an operator can see tubes run (issue: observability), on the SAM-expanded template:

- every log group has a retention, and every function logs to a log group of this template (so none falls back to
  Lambda's own group, which is kept forever);
- every consumer (a function with a Kinesis event source mapping) has its alarms: iterator age, errors,
  throttles, and lag from its EMF metric (`Lag`, dimension `Consumer` = its binary's name without
  `tubes-consumer-`, or as READERS names it);
- every SQS queue (dead letters) has an alarm on its visible messages;
- every other function (ingest) has alarms on errors and throttles; the HTTP API on 5xx; the stream on write
  throttling;
- every alarm notifies someone (AlarmActions).

    python scripts/check_alarms.py .local/template.expanded.json
"""

import json
import sys

# Stream readers that are not `tubes-consumer-NAME` binaries, and the `Consumer` their EMF Lag carries.
READERS = {"tubes-archive": "archive"}


def ref(value):
    """The logical id a `Ref` or `Fn::GetAtt` names, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return target[0] if isinstance(target, list) else target.split(".")[0]
    return None


def main(path):
    resources = json.load(open(path))["Resources"]
    of_type = lambda t: {k: v for k, v in resources.items() if v["Type"] == t}  # noqa: E731
    problems = []

    log_groups = of_type("AWS::Logs::LogGroup")
    for name, group in log_groups.items():
        if "RetentionInDays" not in group.get("Properties", {}):
            problems.append(f"{name}: a log group without RetentionInDays (kept forever)")
    functions = of_type("AWS::Lambda::Function")
    for name, function in functions.items():
        group = ref(function["Properties"].get("LoggingConfig", {}).get("LogGroup"))
        if group not in log_groups:
            problems.append(f"{name}: LoggingConfig.LogGroup names no log group of this template")

    alarms = of_type("AWS::CloudWatch::Alarm")
    for name, alarm in alarms.items():
        if not alarm["Properties"].get("AlarmActions"):
            problems.append(f"{name}: an alarm that notifies no one (no AlarmActions)")

    def alarmed(metric, dimension, target, namespace=None):
        """Whether an alarm watches `metric` with `dimension` naming `target` (a logical id or a plain value)."""
        for alarm in alarms.values():
            props = alarm["Properties"]
            if props.get("MetricName") != metric:
                continue
            if namespace is not None and props.get("Namespace") != namespace:
                continue
            for d in props.get("Dimensions", []):
                if d["Name"] == dimension and (ref(d["Value"]) == target or d["Value"] == target):
                    return True
        return False

    mappings = of_type("AWS::Lambda::EventSourceMapping")
    consumers = {}
    for mapping in mappings.values():
        props = mapping["Properties"]
        if ref(props.get("EventSourceArn")) in of_type("AWS::Kinesis::Stream"):
            consumers[ref(props["FunctionName"])] = props
    metrics_namespace = {"Ref": "MetricsNamespace"}
    for function, mapping in sorted(consumers.items()):
        for metric in ("IteratorAge", "Errors", "Throttles"):
            if not alarmed(metric, "FunctionName", function):
                problems.append(f"{function}: a consumer without an alarm on {metric}")
        binary = resources[function].get("Metadata", {}).get("BuildProperties", {}).get("Binary", "")
        consumer = READERS.get(binary, binary.removeprefix("tubes-consumer-"))
        if not consumer or consumer == binary:
            problems.append(f"{function}: a consumer whose binary is not tubes-consumer-NAME ({binary!r})")
        elif not alarmed("Lag", "Consumer", consumer, namespace=metrics_namespace):
            problems.append(f"{function}: a consumer without an alarm on its EMF Lag (Consumer={consumer})")
        queue = ref(mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"))
        if queue is None:
            problems.append(f"{function}: a consumer without an on-failure destination")
    for queue in of_type("AWS::SQS::Queue"):
        if not alarmed("ApproximateNumberOfMessagesVisible", "QueueName", queue):
            problems.append(f"{queue}: a queue without an alarm on its visible messages")
    for function in functions:
        if function in consumers:
            continue
        for metric in ("Errors", "Throttles"):
            if not alarmed(metric, "FunctionName", function):
                problems.append(f"{function}: a function without an alarm on {metric}")
    for api in of_type("AWS::ApiGatewayV2::Api"):
        if not alarmed("5xx", "ApiId", api):
            problems.append(f"{api}: an HTTP API without an alarm on 5xx")
    for stream in of_type("AWS::Kinesis::Stream"):
        if not alarmed("WriteProvisionedThroughputExceeded", "StreamName", stream):
            problems.append(f"{stream}: a stream without an alarm on write throttling")

    for p in problems:
        print(f"check_alarms: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(
        f"check_alarms: {len(consumers)} consumers, {len(functions)} functions, {len(alarms)} alarms, "
        f"{len(log_groups)} log groups: every one watched and retained"
    )


if __name__ == "__main__":
    main(sys.argv[1])
