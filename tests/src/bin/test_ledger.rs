//! The `ledger` CLI, built inside this package for the tests that run it.

fn main() -> std::process::ExitCode {
    ledger_client::cli::main()
}
