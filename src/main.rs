//! The `repo-mirror` binary: the command line, or the Lambda function when `AWS_LAMBDA_RUNTIME_API` is
//! set (or `repo-mirror lambda`).

use std::process::ExitCode;

use clap::Parser;
use repo_mirror::cli::{self, Cli, Command};

fn main() -> ExitCode {
    // In Lambda there are no arguments: the runtime API's presence chooses the function.
    let lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let command = if lambda {
        Command::Lambda
    } else {
        Cli::parse().command
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("repo-mirror: error: could not start the async runtime: {err}");
            return ExitCode::from(cli::EXIT_FAILED);
        }
    };
    let status = runtime.block_on(async {
        match command {
            Command::Run(args) => cli::run_command(args, false).await,
            Command::Status(args) => cli::run_command(args, true).await,
            Command::Lambda => match repo_mirror::lambda::serve().await {
                Ok(()) => cli::EXIT_OK,
                Err(err) => {
                    eprintln!("repo-mirror: error: the Lambda runtime stopped: {err}");
                    cli::EXIT_FAILED
                }
            },
        }
    });
    ExitCode::from(status)
}
