//! Bounded projection state: built-ins whose tables may keep only a few KiB
//! in memory (the rest evicted to the projection store and read back on
//! demand) reach the same digests as with the default bound, and every
//! query answers the same, rows long evicted included — live, after a
//! replay, and after a reopen that restores nothing into memory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_core::projection::builtin::metrics::Granularity;
use ledger_core::projection::builtin::subjects::{Selector, Subject};
use ledger_core::projection::builtin::{AsOf, Builtins, VIEWS};
use ledger_core::projection::{Projections, ProjectionsConfig};
use ledger_core::sample::SampleEvidence;
use ledger_core::{AppendRequest, Ledger};
use ledger_tests::digests;

/// Enough records for several catch-up rounds (262,144 records each) and
/// hundreds of workstreams and incidents.
const RECORDS: u64 = 600_000;
const BATCH: usize = 10_000;
const SEED: u64 = 7;
/// Resident bytes per projection of the bounded engine: a handful of rows.
const TINY: usize = 4 * 1024;
const CATCH_UP: Duration = Duration::from_secs(600);

fn open(ledger: &Arc<Ledger>, dir: &Path, resident_bytes: usize) -> anyhow::Result<(Projections, Builtins)> {
    let engine = Projections::open_with(
        Arc::clone(ledger),
        dir,
        ProjectionsConfig {
            resident_bytes,
            ..ProjectionsConfig::default()
        },
    )?;
    let builtins = Builtins::register(&engine)?;
    let deadline = Instant::now() + CATCH_UP;
    while engine.status()?.iter().any(|s| s.applied < ledger.len()) {
        anyhow::ensure!(Instant::now() < deadline, "no catch-up: {:?}", engine.status()?);
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((engine, builtins))
}

/// Every view with no filter and with the ids of the first (long closed,
/// so long evicted) and a late workstream, task and incident, plus direct
/// reads the views do not cover: one string to compare whole.
fn answers(builtins: &Builtins) -> String {
    let mut out = Vec::new();
    let filters: Vec<HashMap<String, String>> = [
        vec![],
        vec![("id", "CUST-WP-0001-T01")],
        vec![("id", "CUST-WP-0001")],
        vec![("workstream", "CUST-WP-0002")],
        vec![("id", "INC-2026-00001")],
        vec![("id", "CUST-WP-0900-T03")],
        vec![("id", "INC-2026-03000")],
        vec![("name", "queue.depth")],
        vec![("granularity", "hour")],
    ]
    .into_iter()
    .map(|pairs| pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    .collect();
    for view in VIEWS {
        for filter in &filters {
            let answer = builtins.query(view, filter, AsOf::Live);
            out.push(format!("{view} {filter:?}: {answer:?}"));
        }
    }
    let subjects = builtins.subjects.read();
    for subject in [
        Subject::Workstream("CUST-WP-0001".into()),
        Subject::Stream("metrics/checkout".into()),
        Subject::Incident("INC-2026-00002".into()),
        Subject::Correlation("run-3".into()),
    ] {
        out.push(format!("{subject:?}: {:?}", subjects.seqs(&subject)));
    }
    let selector = Selector {
        subjects: vec![Subject::Stream("metrics/checkout".into())],
        time_ns: Some(ledger_core::sample::START_NS..ledger_core::sample::START_NS + 3_600_000_000_000),
        seqs: None,
    };
    out.push(format!("select: {:?}", subjects.select(&selector)));
    drop(subjects);
    let metrics = builtins.metrics.read();
    for granularity in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
        let rows = metrics.query("http.request.duration_ms", &[], granularity, i64::MIN, i64::MAX);
        out.push(format!("{granularity:?}: {} rows {rows:?}", rows.len()));
    }
    out.push(format!("series: {:?}", metrics.series(None)));
    drop(metrics);
    let tasks = builtins.tasks.read();
    out.push(format!("notes: {:?}", tasks.notes("CUST-WP-0001-T01")));
    out.push(format!("rollup: {:?}", tasks.rollup("CUST-WP-0001")));
    out.join("\n")
}

/// Compares answers line by line, naming the first that differs.
fn same(got: &str, want: &str) {
    for (n, (got, want)) in got.lines().zip(want.lines()).enumerate() {
        let cut = |s: &str| s.chars().take(600).collect::<String>();
        assert!(
            got == want,
            "answer {n} differs:\n got {}\nwant {}",
            cut(got),
            cut(want)
        );
    }
    assert_eq!(got.lines().count(), want.lines().count());
}

#[test]
fn a_tiny_resident_bound_changes_no_digest_and_no_answer() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = Arc::new(ledger_tests::open(&dir.path().join("ledger"))?);
    let mut source = SampleEvidence::new(SEED);
    let half = RECORDS / 2;
    let mut append = |n: u64| -> anyhow::Result<()> {
        let mut left = n;
        while left > 0 {
            let batch = BATCH.min(left as usize);
            ledger.append(AppendRequest::new(source.take_events(batch)))?;
            left -= batch as u64;
        }
        Ok(())
    };
    append(half)?;

    let (wide_engine, wide) = open(&ledger, &dir.path().join("wide"), usize::MAX)?;
    let (tiny_engine, tiny) = open(&ledger, &dir.path().join("tiny"), TINY)?;
    assert_eq!(digests(&tiny_engine)?, digests(&wide_engine)?);
    let expected = answers(&wide);
    assert!(expected.contains("CUST-WP-0001-T01"), "the first task is answered");
    same(&answers(&tiny), &expected);

    // Live folding on top of an evicted state, then a reopen that restores
    // nothing into memory, then a replay into a fresh generation.
    append(RECORDS - half)?;
    for builtins in [&wide, &tiny] {
        assert!(builtins.tasks.wait_applied(ledger.len(), CATCH_UP));
        assert!(builtins.incidents.wait_applied(ledger.len(), CATCH_UP));
        assert!(builtins.subjects.wait_applied(ledger.len(), CATCH_UP));
        assert!(builtins.metrics.wait_applied(ledger.len(), CATCH_UP));
    }
    let expected_digests = digests(&wide_engine)?;
    assert_eq!(digests(&tiny_engine)?, expected_digests);
    let expected = answers(&wide);
    same(&answers(&tiny), &expected);

    tiny_engine.close()?;
    drop((tiny_engine, tiny));
    let (tiny_engine, tiny) = open(&ledger, &dir.path().join("tiny"), TINY)?;
    assert_eq!(digests(&tiny_engine)?, expected_digests);
    same(&answers(&tiny), &expected);

    for name in tiny_engine.names() {
        let outcome = tiny_engine.replay(name, 0, |_| {})?;
        let want = expected_digests.iter().find(|d| d.name == name).map(|d| &d.digest);
        assert_eq!(Some(&outcome.digest.digest), want, "{name} replayed");
    }
    same(&answers(&tiny), &expected);
    Ok(())
}

/// `ledgerd serve` refuses to start with a resident bound that is not a
/// number of bytes of at least 1 MiB, naming the setting, whether it comes
/// from the flag, the environment or the config file, and creates nothing.
#[test]
fn ledgerd_refuses_a_bad_resident_bound_naming_it() -> anyhow::Result<()> {
    use anyhow::Context as _;

    use crate::auth_cli::{run, text};

    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let config = dir.path().join("ledgerd.toml");
    std::fs::write(&config, "projection_resident_bytes = 0\n")?;
    let (data_arg, config_arg) = (data.to_str().context("path")?, config.to_str().context("path")?);
    let serve = |extra: &[&str]| -> Vec<String> {
        ["serve", "--listen", "127.0.0.1:0", "--data", data_arg]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let below = "projection_resident_bytes: 0 is below the minimum of 1048576 (1 MiB)";
    // (arguments, environment, what stderr says)
    type Case<'a> = (Vec<String>, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 5] = [
        (serve(&["--projection-resident-bytes", "0"]), &[], below),
        (
            serve(&["--projection-resident-bytes", "1024"]),
            &[],
            "projection_resident_bytes: 1024 is below the minimum",
        ),
        (
            serve(&["--projection-resident-bytes=-1"]),
            &[],
            "--projection-resident-bytes",
        ),
        (
            serve(&[]),
            &[("LEDGER_PROJECTION_RESIDENT_BYTES", "16MiB")],
            "invalid value '16MiB' for '--projection-resident-bytes",
        ),
        (serve(&["--config", config_arg]), &[], below),
    ];
    for (args, env, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(crate::LEDGERD, &args, env)?;
        let stderr = text(&out.stderr);
        anyhow::ensure!(!out.status.success(), "{args:?} {env:?} started");
        anyhow::ensure!(
            stderr.contains(expected),
            "{args:?} {env:?}: {stderr:?} lacks {expected:?}"
        );
        anyhow::ensure!(!data.exists(), "a refused start created {}", data.display());
    }
    Ok(())
}
