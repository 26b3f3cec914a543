//! `ledgerd`, built inside this package for the tests that kill it.

fn main() -> anyhow::Result<()> {
    ledger_server::cli::main()
}
