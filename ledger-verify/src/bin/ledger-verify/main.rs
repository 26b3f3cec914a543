//! `ledger-verify`: the offline verifier's command line. Parses arguments
//! (`args.rs`), runs one check (`run.rs`), prints one verdict and exits 0
//! (verified), 1 (not verified) or 2 (usage error or unreadable input).
//!
//! Verdicts go to standard output: text (`verified: …` or
//! `not verified: …`, one line naming what failed and where) or, with
//! `--json`, one JSON object. Usage and input errors go to standard error
//! (as a JSON object on standard output with `--json`).

mod args;
mod run;

use std::process::ExitCode;

use serde_json::json;

use crate::args::{Args, Command, USAGE};
use crate::run::{InputError, Outcome};

fn main() -> ExitCode {
    let raw: Vec<_> = std::env::args_os().skip(1).collect();
    let json = raw.iter().any(|arg| arg == "--json");
    let args = match args::parse(raw) {
        Ok(args) => args,
        Err(error) => return input_error(&format!("{error} (see ledger-verify --help)"), "usage", json),
    };
    let Args { command, json } = args;
    match command {
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("ledger-verify {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        command => match run::run(&command) {
            Ok(Outcome::Verified { text, json: object }) => {
                if json {
                    let mut fields = vec![("ok", json!(true))];
                    fields.extend(object);
                    println!("{}", json_object(&fields));
                } else {
                    println!("{text}");
                }
                ExitCode::SUCCESS
            }
            Ok(Outcome::Failed { kind, seq, error }) => {
                if json {
                    println!("{}", failure_json(kind, seq, &error));
                } else {
                    println!("not verified: {error}");
                }
                ExitCode::from(1)
            }
            Err(InputError(error)) => input_error(&error, "input", json),
        },
    }
}

fn input_error(error: &str, kind: &str, json: bool) -> ExitCode {
    if json {
        println!("{}", failure_json(kind, None, error));
    } else {
        eprintln!("ledger-verify: {error}");
    }
    ExitCode::from(2)
}

fn failure_json(kind: &str, seq: Option<u64>, error: &str) -> String {
    json_object(&[
        ("ok", json!(false)),
        ("kind", json!(kind)),
        ("seq", json!(seq)),
        ("error", json!(error)),
    ])
}

/// One line of JSON with the fields in the given order (`serde_json`'s own
/// maps sort keys; `"ok"` reads best first).
fn json_object(fields: &[(&str, serde_json::Value)]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{}:{value}", serde_json::Value::from(*name)))
        .collect();
    format!("{{{}}}", fields.join(","))
}
