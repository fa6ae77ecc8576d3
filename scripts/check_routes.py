"""Closed by default, checked on the SAM-expanded template (what CloudFormation would create).

Fails when
- a route of an HTTP API has no authorizer and does not reach a function that authenticates every request
  itself (ingest: an API key, a signature or the IAM authorizer's caller, against its sources; the query
  function: a reader's key, against its readers);
- a function may accept requests without a credential (`ALLOW_OPEN_SOURCES`), or takes its sources from the
  template instead of the sources secret (`TUBES_SOURCES`);
- a sources secret's value in the template declares an `open` source.

usage: check_routes.py EXPANDED_TEMPLATE_JSON
"""

import json
import re
import sys

# Functions that authenticate every request themselves, by their binary.
AUTHENTICATING = {"tubes-ingest", "tubes-query"}


def integration_function(operation):
    """The logical id of the function a route's Lambda proxy integration invokes, if any."""
    uri = operation.get("x-amazon-apigateway-integration", {}).get("uri", {})
    text = uri.get("Fn::Sub", "") if isinstance(uri, dict) else str(uri)
    if isinstance(text, list):
        text = text[0]
    match = re.search(r"\$\{(\w+)\.Arn\}", text)
    return match.group(1) if match else None


def main(path):
    resources = json.load(open(path))["Resources"]
    problems = []
    binaries = {
        name: r.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        for name, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function"
    }
    routes = 0
    for name, api in resources.items():
        if api["Type"] != "AWS::ApiGatewayV2::Api":
            continue
        for route, methods in api["Properties"].get("Body", {}).get("paths", {}).items():
            for method, operation in methods.items():
                routes += 1
                if operation.get("security"):
                    continue
                function = integration_function(operation)
                if binaries.get(function) not in AUTHENTICATING:
                    problems.append(
                        f"{name} {method.upper()} {route}: no authorizer, and its target {function} does not "
                        "authenticate requests itself"
                    )
    secrets = set()
    for name, fn in resources.items():
        if fn["Type"] != "AWS::Lambda::Function":
            continue
        env = fn["Properties"].get("Environment", {}).get("Variables", {})
        if str(env.get("ALLOW_OPEN_SOURCES", "false")).lower() != "false":
            problems.append(f"{name}: ALLOW_OPEN_SOURCES lets requests in without a credential")
        if "TUBES_SOURCES" in env:
            problems.append(f"{name}: TUBES_SOURCES puts the sources in the template; use the sources secret")
        ref = env.get("SOURCES_SECRET_ID")
        if isinstance(ref, dict) and "Ref" in ref:
            secrets.add(ref["Ref"])
    for name in secrets:
        value = resources.get(name, {}).get("Properties", {}).get("SecretString", "{}")
        try:
            sources = json.loads(value) if isinstance(value, str) else {}
        except ValueError:
            problems.append(f"{name}: the sources in SecretString are not JSON")
            continue
        for source, spec in sources.items():
            if isinstance(spec, dict) and spec.get("open"):
                problems.append(f"{name}: source {source} is open (no credential)")
    for p in problems:
        print("check_routes:", p, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"check_routes: {routes} routes, each authenticated by an authorizer or by ingest; no open source")


if __name__ == "__main__":
    main(sys.argv[1])
