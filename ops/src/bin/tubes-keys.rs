//! `tubes-keys`: mint credentials for the sources and readers (see `tubes_ops::keys`; `--help`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use tubes_ops::keys;

/// Mint credentials for the sources (ingest) and the readers (the query API). Nothing is stored: each command
/// prints what to give the producer and what to add to the configuration.
#[derive(Debug, Parser)]
#[command(name = "tubes-keys", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A new API key (shown once) and its hash, for a source in the sources configuration or a reader in the
    /// readers configuration.
    ApiKey {
        /// The source (or reader) the key is for, e.g. `shop`.
        owner: String,
        /// The key's id, e.g. `k2026`: what the configuration lists it under, so it can be retired alone.
        key_id: String,
    },
    /// A new Standard Webhooks signing secret (`whsec_…`).
    SigningSecret,
    /// The local stack's demo source and reader: DIR/demo-sources.json, DIR/demo-readers.json and DIR/demo.env,
    /// written once (kept across restarts), then printed.
    Demo {
        /// The state directory (`make dev`'s is `.local/dev`).
        dir: PathBuf,
    },
    /// Shell completions on standard output, e.g. `tubes-keys completions bash`.
    Completions {
        /// bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tubes-keys: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<String, String> {
    match command {
        Command::ApiKey { owner, key_id } => {
            let minted = keys::api_key(&owner, &key_id)?;
            Ok(format!(
                "key (give it to the producer; it is not stored anywhere):\n  {}\n\
                 add under the source's \"api_keys\" in the sources configuration:\n  \"{key_id}\": \"{}\"\n",
                minted.key, minted.hash
            ))
        }
        Command::SigningSecret => Ok(format!("{}\n", keys::signing_secret()?)),
        Command::Demo { dir } => demo(&dir),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tubes-keys", &mut out);
            String::from_utf8(out).map_err(|e| e.to_string())
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn an_api_key_needs_its_owner_and_id() {
        let err = Cli::try_parse_from(["tubes-keys", "api-key", "shop"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let ok = Cli::try_parse_from(["tubes-keys", "api-key", "shop", "k1"]).unwrap();
        assert!(
            matches!(ok.command, Command::ApiKey { ref owner, ref key_id } if owner == "shop" && key_id == "k1")
        );
    }

    #[test]
    fn demo_credentials_are_minted_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("tubes-keys-{}", std::process::id()));
        let first = run(Command::Demo { dir: dir.clone() }).unwrap();
        assert!(first.contains("TUBES_API_KEY="), "{first}");
        let second = run(Command::Demo { dir: dir.clone() }).unwrap();
        assert_eq!(first, second, "the same credentials on the next start");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn completions_name_the_subcommands() {
        let bash = run(Command::Completions {
            shell: clap_complete::Shell::Bash,
        })
        .unwrap();
        for sub in ["api-key", "signing-secret", "demo"] {
            assert!(bash.contains(sub), "{sub}");
        }
    }
}
