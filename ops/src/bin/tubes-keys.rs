//! `tubes-keys`: mint credentials for the sources (see `tubes_ops::keys`).
//!
//! ```text
//! tubes-keys api-key OWNER KEY_ID      a new API key (shown once) and its hash, for a source in the sources
//!                                      configuration or a reader in the readers configuration (the query API)
//! tubes-keys signing-secret            a new Standard Webhooks signing secret (whsec_…)
//! tubes-keys demo DIR                  the local stack's demo source and reader: DIR/demo-sources.json,
//!                                      DIR/demo-readers.json and DIR/demo.env, written once (kept across
//!                                      restarts), then printed
//! ```

use std::path::Path;
use std::process::ExitCode;

use tubes_ops::keys;

const USAGE: &str = "usage: tubes-keys api-key SOURCE KEY_ID | signing-secret | demo DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tubes-keys: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[&str]) -> Result<String, String> {
    match args {
        ["api-key", source, key_id] => {
            let minted = keys::api_key(source, key_id)?;
            Ok(format!(
                "key (give it to the producer; it is not stored anywhere):\n  {}\n\
                 add under the source's \"api_keys\" in the sources configuration:\n  \"{key_id}\": \"{}\"\n",
                minted.key, minted.hash
            ))
        }
        ["signing-secret"] => Ok(format!("{}\n", keys::signing_secret()?)),
        ["demo", dir] => demo(Path::new(dir)),
        _ => Err(USAGE.into()),
    }
}

/// The demo credentials in `dir`, minted on the first call.
fn demo(dir: &Path) -> Result<String, String> {
    let (sources_file, readers_file, env_file) = (
        dir.join("demo-sources.json"),
        dir.join("demo-readers.json"),
        dir.join("demo.env"),
    );
    if !sources_file.exists() || !readers_file.exists() || !env_file.exists() {
        let demo = keys::demo()?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(&sources_file, demo.sources)
            .and_then(|()| std::fs::write(&readers_file, demo.readers))
            .and_then(|()| std::fs::write(&env_file, demo.env))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::read_to_string(&env_file).map_err(|e| format!("{}: {e}", env_file.display()))
}
