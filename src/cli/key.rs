use std::process::ExitCode;

#[derive(clap::Args)]
pub struct KeyArgs {}

pub fn run(_args: KeyArgs) -> ExitCode {
    ExitCode::SUCCESS
}
