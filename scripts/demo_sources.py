"""The local stack's sources: the template's SourcesSecret value with a demo source added.

usage: demo_sources.py EXPANDED_TEMPLATE.json STATE_DIR > sources.json

The demo source (an API key and a signing secret, allowed every producer type) is minted once per state directory
by `tubes-keys demo STATE_DIR` (STATE_DIR/demo-sources.json, and STATE_DIR/demo.env for the developer), the binary
in TUBES_BIN_DIR (default target/debug). Exits 3, printing nothing, when the template has no SourcesSecret (then the
local stack has no demo source); any other failure is an error."""
import json
import os
import subprocess
import sys

template, state = sys.argv[1], sys.argv[2]
secret = json.load(open(template)).get("Resources", {}).get("SourcesSecret")
if secret is None:
    sys.exit(3)
bin_dir = os.environ.get("TUBES_BIN_DIR") or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug")
subprocess.run([os.path.join(bin_dir, "tubes-keys"), "demo", state], check=True, stdout=subprocess.DEVNULL)
sources = json.loads(secret.get("Properties", {}).get("SecretString") or "{}")
sources.update(json.load(open(os.path.join(state, "demo-sources.json"))))
print(json.dumps(sources))
