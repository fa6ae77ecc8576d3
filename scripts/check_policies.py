"""Least privilege, checked on the SAM-expanded template (what CloudFormation would create).

Fails when a function's role
- has no permissions boundary, or the boundary lets Kinesis reach beyond the stack's stream
  (SAM attaches AWSLambdaKinesisExecutionRole, Kinesis reads on `*`, to every stream consumer's role);
- has an inline statement on `Resource: "*"`;
- may touch the idempotency table without a `dynamodb:LeadingKeys` condition on its own `{consumer}#` keys, or
  on consumers' event records (`{consumer}#event *`, the event-status view) for more than reading them.

usage: check_policies.py EXPANDED_TEMPLATE_JSON
"""

import json
import sys

# What a reader of records may do with them.
READ_ONLY = {"dynamodb:GetItem", "dynamodb:BatchGetItem"}


def as_list(value):
    return value if isinstance(value, list) else [value]


def inline_policies(policies):
    """The role's inline policies, both branches of an `Fn::If` included (`AWS::NoValue` skipped)."""
    for policy in policies:
        if "Fn::If" in policy:
            yield from inline_policies([p for p in policy["Fn::If"][1:] if isinstance(p, dict) and "Ref" not in p])
        else:
            yield policy


def boundary_problems(name, boundary):
    problems = []
    for st in as_list(boundary["Properties"]["PolicyDocument"]["Statement"]):
        actions = [a for a in as_list(st.get("Action", [])) if a.startswith("kinesis:") or a == "*"]
        if actions and "*" in as_list(st.get("Resource", [])):
            problems.append(f"{name}: {actions} on Resource '*'")
        if st.get("Effect") == "Allow" and "NotAction" in st and "kinesis:*" not in as_list(st["NotAction"]):
            problems.append(f"{name}: NotAction {st['NotAction']} lets Kinesis through on '*'")
    return problems


def main(path):
    resources = json.load(open(path))["Resources"]
    problems = []
    roles = {k: v for k, v in resources.items() if v["Type"] == "AWS::IAM::Role"}
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    if not roles or not functions:
        problems.append("no function roles found: is this the expanded template?")

    checked = set()
    for name, role in roles.items():
        props = role["Properties"]
        boundary = props.get("PermissionsBoundary", {}).get("Ref")
        if boundary not in resources:
            problems.append(f"{name}: no permissions boundary of this stack")
        elif boundary not in checked:
            checked.add(boundary)
            problems += boundary_problems(boundary, resources[boundary])
        for policy in inline_policies(props.get("Policies", [])):
            for st in as_list(policy["PolicyDocument"]["Statement"]):
                where = f"{name}/{policy['PolicyName']}/{st.get('Sid', '?')}"
                if "*" in as_list(st.get("Resource", [])):
                    problems.append(f"{where}: Resource '*'")
                on_idempotency = any(
                    isinstance(r, dict) and r.get("Fn::GetAtt", [None])[0] == "IdempotencyTable"
                    for r in as_list(st.get("Resource", []))
                )
                if on_idempotency:
                    keys = (
                        st.get("Condition", {})
                        .get("ForAllValues:StringLike", {})
                        .get("dynamodb:LeadingKeys", [])
                    )
                    if not keys or any(
                        not (k.endswith("#*") or k.endswith("#event *")) or k.startswith("#") for k in keys
                    ):
                        problems.append(f"{where}: idempotency records without a '{{consumer}}#*' LeadingKeys condition")
                    # A reader of several consumers' event records (the event-status view) only reads.
                    readers = [k for k in keys if k.endswith("#event *")]
                    if readers and set(as_list(st.get("Action", []))) - READ_ONLY:
                        problems.append(f"{where}: '{{consumer}}#event *' keys are for reading only")

    for problem in problems:
        print(f"check_policies: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"policies: {len(roles)} function roles, each bounded and least privilege")


if __name__ == "__main__":
    main(sys.argv[1])
