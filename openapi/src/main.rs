//! `petrel`: Petrel from a terminal or a script. Every call goes through the client generated
//! from `openapi/openapi.json`.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use petrel_cli::commands::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let commands::Command::Completions { shell } = &cli.command {
        clap_complete::generate(*shell, &mut Cli::command(), "petrel", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a Tokio runtime");
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("petrel: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
