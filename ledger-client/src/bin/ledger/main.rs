//! `ledger`: the command-line client of `ledgerd` (see `ledger_client::cli`).

fn main() -> std::process::ExitCode {
    ledger_client::cli::main()
}
