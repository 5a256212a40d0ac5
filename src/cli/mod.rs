//! One module per subcommand. Each exposes `XArgs` (clap) and `run(XArgs) -> ExitCode`.
//! User errors exit with code 2 and a one-line message on stderr.

pub mod crd;
pub mod data_identity;
pub mod genesis;
pub mod key;
pub mod network_files;
pub mod render;
pub mod run;
