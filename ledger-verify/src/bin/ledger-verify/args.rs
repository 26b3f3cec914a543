//! Command-line parsing for `ledger-verify`: four subcommands and a handful
//! of flags, parsed by hand so the verifier needs no argument-parsing
//! dependency (an auditor reads every crate it runs). This module only
//! turns arguments into a [`Command`]; it reads no files.

use std::ffi::OsString;
use std::path::PathBuf;

/// Printed by `--help` and after a usage error.
pub const USAGE: &str = "\
ledger-verify: check evidence-ledger audit bundles, checkpoints and Merkle proofs offline

Usage:
  ledger-verify bundle FILE --key KEY [--key KEY...] [--trusted-checkpoint FILE...] [--json]
  ledger-verify checkpoint FILE --key KEY [--key KEY...] [--json]
  ledger-verify inclusion FILE [--json]
  ledger-verify consistency FILE [--json]

  FILE                        the file to check; - reads standard input
  --key KEY                   a trusted ledger verifier key: the text name+keyid+base64,
                              or a file holding one per line (e.g. ledger.key.pub)
  --trusted-checkpoint FILE   a signed checkpoint you already trust; the bundle must
                              prove its checkpoint consistent with it
  --json                      print one JSON object instead of text

Exit status: 0 verified; 1 not verified (one line on standard output says what
failed and where); 2 usage error or unreadable input (message on standard error).
Proof documents (docs/FORMAT.md section 12.7):
  inclusion   {\"hash_alg\",\"index\",\"tree_size\",\"leaf_hash\" or \"record_hash\",\"root\",\"proof\"}
  consistency {\"hash_alg\",\"old_size\",\"new_size\",\"old_root\",\"new_root\",\"proof\"}
";

/// What to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `bundle FILE --key KEY... [--trusted-checkpoint FILE...]`.
    Bundle {
        /// The bundle file.
        file: PathBuf,
        /// `--key` values, unresolved.
        keys: Vec<String>,
        /// `--trusted-checkpoint` files.
        trusted_checkpoints: Vec<PathBuf>,
    },
    /// `checkpoint FILE --key KEY...`.
    Checkpoint {
        /// The note file.
        file: PathBuf,
        /// `--key` values, unresolved.
        keys: Vec<String>,
    },
    /// `inclusion FILE`.
    Inclusion {
        /// The proof document.
        file: PathBuf,
    },
    /// `consistency FILE`.
    Consistency {
        /// The proof document.
        file: PathBuf,
    },
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The subcommand.
    pub command: Command,
    /// `--json`.
    pub json: bool,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
    let words = args
        .into_iter()
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| format!("argument {arg:?} is not UTF-8"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut subcommand: Option<String> = None;
    let mut file: Option<String> = None;
    let mut keys = Vec::new();
    let mut trusted = Vec::new();
    let mut json = false;
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (word.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone().or_else(|| words.next()) {
                Some(value) if !value.is_empty() => Ok(value),
                _ => Err(format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => {
                return Ok(Args {
                    command: Command::Help,
                    json,
                });
            }
            "help" if subcommand.is_none() => {
                return Ok(Args {
                    command: Command::Help,
                    json,
                });
            }
            "-V" | "--version" => {
                return Ok(Args {
                    command: Command::Version,
                    json,
                });
            }
            "--json" if inline.is_none() => json = true,
            "--key" => keys.push(value("--key")?),
            "--trusted-checkpoint" => trusted.push(PathBuf::from(value("--trusted-checkpoint")?)),
            "-" => set_positional(&mut subcommand, &mut file, word)?,
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            _ => set_positional(&mut subcommand, &mut file, word)?,
        }
    }
    let subcommand = subcommand.ok_or("no subcommand: bundle, checkpoint, inclusion or consistency")?;
    let file = PathBuf::from(file.ok_or_else(|| format!("{subcommand}: FILE is missing"))?);
    let no_keys = |keys: &[String]| -> Result<(), String> {
        if keys.is_empty() {
            Err(format!("{subcommand}: at least one --key is needed"))
        } else {
            Ok(())
        }
    };
    let refuse = |what: &str, present: bool| -> Result<(), String> {
        if present {
            Err(format!("{subcommand} does not take {what}"))
        } else {
            Ok(())
        }
    };
    let command = match subcommand.as_str() {
        "bundle" => {
            no_keys(&keys)?;
            Command::Bundle {
                file,
                keys,
                trusted_checkpoints: trusted,
            }
        }
        "checkpoint" => {
            no_keys(&keys)?;
            refuse("--trusted-checkpoint", !trusted.is_empty())?;
            Command::Checkpoint { file, keys }
        }
        "inclusion" | "consistency" => {
            refuse("--key", !keys.is_empty())?;
            refuse("--trusted-checkpoint", !trusted.is_empty())?;
            if subcommand == "inclusion" {
                Command::Inclusion { file }
            } else {
                Command::Consistency { file }
            }
        }
        other => return Err(format!("unknown subcommand {other:?}")),
    };
    Ok(Args { command, json })
}

fn set_positional(subcommand: &mut Option<String>, file: &mut Option<String>, word: String) -> Result<(), String> {
    if subcommand.is_none() {
        *subcommand = Some(word);
    } else if file.is_none() {
        *file = Some(word);
    } else {
        return Err(format!("unexpected argument {word:?} (one FILE per run)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Result<Args, String> {
        parse(text.split_whitespace().map(OsString::from))
    }

    #[test]
    fn parses_every_subcommand() {
        assert_eq!(
            args("bundle b.json --key k1 --key=k2 --trusted-checkpoint t1 --json").unwrap(),
            Args {
                command: Command::Bundle {
                    file: "b.json".into(),
                    keys: vec!["k1".into(), "k2".into()],
                    trusted_checkpoints: vec!["t1".into()],
                },
                json: true,
            }
        );
        assert_eq!(
            args("checkpoint --key k c.txt").unwrap().command,
            Command::Checkpoint {
                file: "c.txt".into(),
                keys: vec!["k".into()],
            }
        );
        assert_eq!(
            args("inclusion -").unwrap().command,
            Command::Inclusion { file: "-".into() }
        );
        assert_eq!(
            args("consistency p.json").unwrap().command,
            Command::Consistency { file: "p.json".into() }
        );
        assert_eq!(args("--help").unwrap().command, Command::Help);
        assert_eq!(args("bundle -h").unwrap().command, Command::Help);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        for (line, error) in [
            ("", "no subcommand"),
            ("bundle", "FILE is missing"),
            ("bundle b.json", "at least one --key"),
            ("bundle b.json --key", "--key needs a value"),
            ("bundle a b --key k", "unexpected argument"),
            ("inclusion p --key k", "does not take --key"),
            (
                "checkpoint c --key k --trusted-checkpoint t",
                "does not take --trusted-checkpoint",
            ),
            ("verify x", "unknown subcommand"),
            ("bundle b --key k --color", "unknown option --color"),
        ] {
            let got = args(line).unwrap_err();
            assert!(got.contains(error), "{line:?}: {got}");
        }
    }
}
