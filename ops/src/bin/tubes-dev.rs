//! `tubes-dev`: the local stack (`make dev`) as a daily tool: send, story, tail, invoke, look (`--help`).

use std::process::ExitCode;

use clap::Parser as _;
use tubes_ops::dev::{run, Cli};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tubes-dev: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
