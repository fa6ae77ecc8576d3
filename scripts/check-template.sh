#!/usr/bin/env bash
# Checks template.yaml with every validator we have offline: cfn-lint, `sam validate --lint`, `sam validate`,
# cfn-lint again on the SAM-expanded template (see scripts/expand_template.py for why), and our own
# least-privilege rules on it (scripts/check_policies.py), our closed-by-default rules (scripts/check_routes.py) and
# our observability rules (scripts/check_alarms.py), the event store's (scripts/check_archive.py) and the
# event-status view's (scripts/check_event_status.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" AWS_REGION="${AWS_REGION:-us-east-1}"
# `sam validate` only needs a region and a credential chain that does not reach the network.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_EC2_METADATA_DISABLED=true
bin=.venv/bin
mkdir -p .local

echo "== cfn-lint template.yaml"
"$bin/cfn-lint" template.yaml
echo "== sam validate --lint"
"$bin/sam" validate --lint --template template.yaml
echo "== sam validate"
"$bin/sam" validate --template template.yaml
echo "== cfn-lint on the SAM-expanded template"
"$bin/python" scripts/expand_template.py template.yaml .local/template.expanded.json
"$bin/cfn-lint" .local/template.expanded.json
echo "== least privilege (scripts/check_policies.py)"
"$bin/python" scripts/check_policies.py .local/template.expanded.json
echo "== closed by default: every route authenticated, no open source (scripts/check_routes.py)"
"$bin/python" scripts/check_routes.py .local/template.expanded.json
echo "== an operator sees it run: alarms on every consumer, queue and function, retention on every log group (scripts/check_alarms.py)"
"$bin/python" scripts/check_alarms.py .local/template.expanded.json
echo "== the event store: every event type projected, the archive reads every record unbisected (scripts/check_archive.py)"
"$bin/python" scripts/check_archive.py .local/template.expanded.json
echo "== the event-status view: every consumer with idempotency records and its types (scripts/check_event_status.py)"
"$bin/python" scripts/check_event_status.py .local/template.expanded.json
echo "template.yaml: all checks passed"
