//! `ledgerd`: the evidence ledger daemon (see `ledger_server::cli`).

fn main() -> anyhow::Result<()> {
    ledger_server::cli::main()
}
