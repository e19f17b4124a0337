//! The `stockd` binary: see `stockd --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    stockd::cli::main()
}
