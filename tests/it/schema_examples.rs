//! The example each committed schema carries (`examples`, from `tubes_contract::schema::example`, what
//! `tubes-dev send` posts) is valid by the schema itself, judged by a real JSON Schema 2020-12 validator
//! (python-jsonschema, pinned in the tools' virtualenv), and by `event.json`; the contract accepts it too
//! (shared/contract/tests/schemas.rs).

use std::process::Command;

use tubes_tests::repo_root;

const CHECK: &str = r#"
import json, pathlib, sys
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
schemas = {p.name: json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("*.json")}
registry = Registry().with_resources(
    (s["$id"], Resource.from_contents(s)) for s in schemas.values())
any_event = Draft202012Validator(schemas["event.json"], registry=registry)
problems = []
for name, schema in sorted(schemas.items()):
    if name == "event.json":
        continue
    Draft202012Validator.check_schema(schema)
    examples = schema.get("examples", [])
    if len(examples) != 1:
        problems.append(f"{name}: {len(examples)} examples")
    own = Draft202012Validator(schema, registry=registry)
    for example in examples:
        problems += [f"{name}: {e.json_path}: {e.message}" for e in own.iter_errors(example)]
        if not any_event.is_valid(example):
            problems.append(f"{name}: its example is not valid by event.json")
print(json.dumps(problems))
"#;

#[test]
fn every_schema_example_is_valid_by_its_schema() {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "run `make test` (it installs the tools' virtualenv)"
    );
    let out = Command::new(python)
        .args(["-c", CHECK])
        .arg(repo_root().join("schemas"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the check failed to run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}
