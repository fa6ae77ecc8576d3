"""Expands template.yaml's AWS::Serverless resources into plain CloudFormation, offline, with samtranslator.

cfn-lint 1.58 checks AWS::Serverless resources only as SAM sees them, so a bad value that SAM passes through
(an event source mapping setting, a filter pattern, a policy) slips through. Linting the expanded template
catches it. Usage: expand_template.py TEMPLATE OUTPUT.json
"""

import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# Pseudo parameters as CloudFormation would resolve them; the values only have to be well-formed.
PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "tubes",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/tubes/00000000-0000-0000-0000-000000000000",
    "AWS::NotificationARNs": [],
    "AWS::NoValue": None,
}


class OfflinePolicies:
    """SAM asks for the account's managed policies only for policies named by name; ours are ARNs or inline."""

    def load(self):
        return {}


def packaged(template):
    """What `sam package` does to code locations: local paths become S3 objects (placeholders here)."""
    glob = (template.get("Globals") or {}).get("Function") or {}
    if isinstance(glob.get("CodeUri"), str) and not glob["CodeUri"].startswith("s3://"):
        glob["CodeUri"] = "s3://tubes-artifacts/code.zip"
    for name, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = f"s3://tubes-artifacts/{name}.zip"
    return template


def main(src, dst):
    # samtranslator asks boto for the region; give it the one the pseudo parameters name, offline.
    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO["AWS::Region"])
    with open(src, encoding="utf-8") as f:
        template = packaged(yaml_parse(f.read()))
    params = dict(PSEUDO)
    for name, spec in (template.get("Parameters") or {}).items():
        if "Default" in spec:
            params[name] = spec["Default"]
    # Metadata is kept: the local stack reads each function's binary name from it.
    expanded = transform(template, params, OfflinePolicies(), passthrough_metadata=True)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(expanded, f, indent=2, sort_keys=True)
    kinds = sorted({r["Type"] for r in expanded["Resources"].values()})
    print(f"expanded {src}: {len(expanded['Resources'])} resources ({', '.join(kinds)}) -> {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
