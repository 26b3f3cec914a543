//! Audit bundles and the offline verifier: bundle assembly, `verify_bundle`
//! on producer-signed and unsigned bundles, and hash-chain verification
//! (`ledger_verify::chain`), beside raw BLAKE3 and ed25519 rates measured in
//! the same run. Prints one Markdown table.
//!
//! ```text
//! cargo run --release -p ledger-benches --bin bundle_report [-- --runs N] [--quick] [--json FILE]
//! ```
//!
//! Setup (not timed), in temporary directories (`LEDGER_BENCH_DIR`
//! respected), every ledger filled with `unsafe_no_sync` (filling is not
//! what is measured) from `ledger_core::sample::SampleEvidence` (seed 42):
//!
//! - **bundle ledger**: 2 × 10 k records, 1024 per append. The first 10 k
//!   are producer-signed (ed25519 over `Event::signing_bytes`, key id
//!   `bench-producer-1`, registered with `StaticProducerKeys`), the next
//!   10 k are not. Every bundle is made against the latest checkpoint
//!   (size 20 k), payloads included;
//! - **chain ledger**: 1 M records, 1024 per append; its canonical bytes
//!   and payloads are read with `Ledger::scan_chunks` into two contiguous
//!   buffers first, so the chain timings cover verification only.
//!
//! Timed, each `--runs` times (default 3), median and min–max:
//!
//! 1. baselines: BLAKE3 of the signed records' canonical bytes; ed25519
//!    `verify_strict` one signature at a time and `verify_batch` of all
//!    10 k, over the same signing bytes and signatures the records carry;
//! 2. `ledger_core::bundle::assemble` of seqs 0..1 k and 0..10 k, then
//!    `serde_json::to_vec_pretty` (what the server stores) of the 10 k one;
//! 3. `ledger_verify::bundle::verify_bundle` on the pretty JSON of the 10 k
//!    signed bundle (every record signed: one batch verify of 10 k) and of
//!    the 10 k unsigned one (seqs 10 k..20 k); `parse_bundle` alone as a
//!    diagnostic;
//! 4. over the 1 M records: raw BLAKE3 of every canonical record, then
//!    `ChainVerifier` without payloads (the ratio the target is about),
//!    raw BLAKE3 of canonical bytes + payload, `ChainVerifier` with
//!    payloads, and, as a diagnostic, the same chain checks written with
//!    the allocating `RecordHeader::decode`. Runs are interleaved so load
//!    drift hits baseline and verifier alike.
//!
//! `--quick`: bundles of 100 and 1 k, a 100 k chain, one run (a smoke
//! test, not a measurement). `--json FILE` also writes every row and the
//! headline figures as JSON, for the one-command report (`benches/run.sh`).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use ledger_benches::{bench_config, bench_dir, open_ledger_with};
use ledger_core::bundle::{BundleOptions, assemble};
use ledger_core::producer::StaticProducerKeys;
use ledger_core::sample::SampleEvidence;
use ledger_core::{AppendRequest, Ledger, LedgerConfig, ProducerSignature};
use ledger_verify::bundle::{Bundle, VerifyOptions, parse_bundle, verify_bundle};
use ledger_verify::chain::{ChainError, ChainVerifier};
use ledger_verify::hash::blake3;
use ledger_verify::note::VerifierKey;
use ledger_verify::record::{GENESIS_PREV_HASH, RecordHeader};
use serde_json::{Value, json};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Seed of the sample evidence.
const SEED: u64 = 42;
/// Events per append while filling.
const FILL_BATCH: usize = 1024;
/// Records per `scan_chunks` chunk while loading the chain.
const READ_CHUNK: usize = 4096;
/// The producer key every signed record names.
const PRODUCER_KEY_ID: &str = "bench-producer-1";
/// Seed of the producer's ed25519 key.
const PRODUCER_SEED: [u8; 32] = [11; 32];
/// Target: a 10 k signed bundle verified in at most this long.
const BUNDLE_TARGET: Duration = Duration::from_millis(500);
/// Target: chain verification at least this fraction of raw BLAKE3.
const CHAIN_TARGET: f64 = 0.60;
/// Raw BLAKE3 over the (small) bundle records is repeated this many times
/// per run so that one run lasts long enough to time.
const BLAKE3_PASSES: usize = 50;

fn main() -> AnyResult<()> {
    let mut runs = 3usize;
    let mut quick = false;
    let mut json_path: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = ledger_benches::positive_arg(args.next(), "--runs")?;
            }
            "--quick" => quick = true,
            "--json" => {
                json_path = Some(
                    args.next()
                        .map(PathBuf::from)
                        .ok_or_else(|| io::Error::other("--json needs a file"))?,
                );
            }
            other => return Err(io::Error::other(format!("unknown argument {other:?}")).into()),
        }
    }
    let (small, large, chain_records) = if quick {
        runs = 1;
        (100, 1_000, 100_000)
    } else {
        (1_000, 10_000, 1_000_000)
    };

    let mut table = Table::default();
    eprintln!("bundle ledger: {} records…", 2 * large);
    let dir = bench_dir()?;
    let fixture = BundleFixture::create(dir.path(), large)?;
    bundle_rows(&mut table, &fixture, small, large, runs)?;
    fixture.ledger.close()?;
    drop(fixture);
    drop(dir);

    eprintln!("chain ledger: {chain_records} records…");
    let chain = ChainFixture::create(chain_records)?;
    chain_rows(&mut table, &chain, runs)?;
    drop(chain);

    table.print();
    println!();
    println!(
        "Runs per row: {runs}; cells are median (min–max). Records: `SampleEvidence`, seed {SEED}. \
         \"vs baseline\" compares median records/s with the named row above it."
    );
    if let Some(path) = json_path {
        let out = json!({
            "runs": runs,
            "bundle_records": large,
            "chain_records": chain_records,
            "figures": table.figures,
            "rows": table.json,
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}

/// The bundle ledger: `2 × large` records, the first `large` signed.
struct BundleFixture {
    ledger: Ledger,
    keys: Vec<VerifierKey>,
    /// Canonical bytes of the signed records (seqs 0..large).
    canonical: Vec<Vec<u8>>,
    /// Their signing bytes, signatures and the producer key.
    messages: Vec<Vec<u8>>,
    signatures: Vec<Signature>,
    producer: VerifyingKey,
}

impl BundleFixture {
    fn create(dir: &std::path::Path, large: usize) -> AnyResult<BundleFixture> {
        let config = LedgerConfig {
            unsafe_no_sync: true,
            ..bench_config()
        };
        let ledger = open_ledger_with(dir, config)?;
        let signing = SigningKey::from_bytes(&PRODUCER_SEED);
        let producer = signing.verifying_key();
        let mut resolver = StaticProducerKeys::new();
        resolver.insert(PRODUCER_KEY_ID, producer);
        ledger.set_producer_keys(Some(Arc::new(resolver)));

        let mut source = SampleEvidence::new(SEED);
        let mut messages = Vec::with_capacity(large);
        let mut signatures = Vec::with_capacity(large);
        let mut appended = 0;
        while appended < 2 * large {
            let n = FILL_BATCH.min(2 * large - appended);
            let mut events = source.take_events(n);
            for (i, event) in events.iter_mut().enumerate() {
                if appended + i < large {
                    let message = event.signing_bytes();
                    let signature = signing.sign(&message);
                    event.signature = Some(ProducerSignature {
                        key_id: PRODUCER_KEY_ID.to_string(),
                        signature: signature.to_bytes(),
                    });
                    messages.push(message);
                    signatures.push(signature);
                }
            }
            ledger.append(AppendRequest::new(events))?;
            appended += n;
        }
        // Inclusion proofs come from the index store.
        ledger.wait_indexed()?;
        let mut canonical = Vec::with_capacity(large);
        while canonical.len() < large {
            let chunk = ledger.read_range(canonical.len() as u64, large - canonical.len())?;
            if chunk.is_empty() {
                return Err(io::Error::other("read_range returned nothing").into());
            }
            canonical.extend(chunk.into_iter().map(|r| r.canonical));
        }
        let keys = vec![ledger.verifier_key()?];
        Ok(BundleFixture {
            ledger,
            keys,
            canonical,
            messages,
            signatures,
            producer,
        })
    }

    fn assemble(&self, seqs: std::ops::Range<u64>) -> AnyResult<Bundle> {
        let seqs: Vec<u64> = seqs.collect();
        let options = BundleOptions {
            selector: BTreeMap::from([("bench".to_string(), "bundle_report".to_string())]),
            ..BundleOptions::default()
        };
        Ok(assemble(&self.ledger, &seqs, &options)?)
    }

    fn verify(&self, bytes: &[u8], signed: u64, records: u64) -> AnyResult<()> {
        let verified = verify_bundle(
            bytes,
            VerifyOptions {
                keys: &self.keys,
                trusted_checkpoints: &[],
            },
        )?;
        if (verified.records, verified.producer_signatures) != (records, signed) {
            return Err(io::Error::other(format!(
                "verified {} records with {} signatures, expected {records} with {signed}",
                verified.records, verified.producer_signatures
            ))
            .into());
        }
        Ok(())
    }
}

fn bundle_rows(table: &mut Table, fixture: &BundleFixture, small: usize, large: usize, runs: usize) -> AnyResult<()> {
    let n = large as u64;
    let canonical_bytes: usize = fixture.canonical.iter().map(Vec::len).sum();
    let message_bytes: usize = fixture.messages.iter().map(Vec::len).sum();

    eprintln!("baselines…");
    let blake3_runs = timed(runs, || {
        for _ in 0..BLAKE3_PASSES {
            for canonical in &fixture.canonical {
                std::hint::black_box(blake3(std::hint::black_box(canonical)));
            }
        }
        Ok(())
    })?;
    let blake3_rate = Rates::of(&blake3_runs, (BLAKE3_PASSES * large) as u64);
    table.row(
        &format!(
            "raw BLAKE3 of the signed records' canonical bytes ({} B avg; {BLAKE3_PASSES} passes per run)",
            canonical_bytes / large
        ),
        n,
        &Times::of(&blake3_runs).per(BLAKE3_PASSES),
        &blake3_rate,
        None,
        "",
    );
    let single_runs = timed(runs, || {
        for (message, signature) in fixture.messages.iter().zip(&fixture.signatures) {
            fixture.producer.verify_strict(message, signature)?;
        }
        Ok(())
    })?;
    let single_rate = Rates::of(&single_runs, n);
    table.row(
        &format!(
            "ed25519 `verify_strict`, one at a time ({} B signing bytes avg)",
            message_bytes / large
        ),
        n,
        &Times::of(&single_runs),
        &single_rate,
        None,
        "",
    );
    let batch_runs = timed(runs, || {
        let messages: Vec<&[u8]> = fixture.messages.iter().map(Vec::as_slice).collect();
        let keys = vec![fixture.producer; large];
        ed25519_dalek::verify_batch(&messages, &fixture.signatures, &keys)?;
        Ok(())
    })?;
    let batch_rate = Rates::of(&batch_runs, n);
    table.figure("blake3_canonical_per_s", blake3_rate.median);
    table.figure("verify_strict_per_s", single_rate.median);
    table.figure("verify_batch_per_s", batch_rate.median);
    table.row(
        &format!("ed25519 `verify_batch` of all {large} at once"),
        n,
        &Times::of(&batch_runs),
        &batch_rate,
        Some(("single", single_rate.median)),
        "",
    );

    eprintln!("assembling…");
    for size in [small, large] {
        let assemble_runs = timed(runs, || {
            std::hint::black_box(fixture.assemble(0..size as u64)?);
            Ok(())
        })?;
        table.row(
            &format!("`bundle::assemble`, seqs 0..{size} (signed, payloads included)"),
            size as u64,
            &Times::of(&assemble_runs),
            &Rates::of(&assemble_runs, size as u64),
            None,
            "",
        );
    }
    let signed = fixture.assemble(0..n)?;
    let unsigned = fixture.assemble(n..2 * n)?;
    let mut pretty = Vec::new();
    let serialise_runs = timed(runs, || {
        pretty = serde_json::to_vec_pretty(&signed)?;
        Ok(())
    })?;
    let compact = serde_json::to_vec(&signed)?;
    table.row(
        &format!(
            "`serde_json::to_vec_pretty` of the {large}-record bundle: {:.1} MiB ({:.1} MiB compact, {} B/record)",
            mib(pretty.len()),
            mib(compact.len()),
            pretty.len() / large
        ),
        n,
        &Times::of(&serialise_runs),
        &Rates::of(&serialise_runs, n),
        None,
        "",
    );
    let unsigned_bytes = serde_json::to_vec_pretty(&unsigned)?;

    eprintln!("verifying bundles…");
    let parse_runs = timed(runs, || {
        std::hint::black_box(parse_bundle(&pretty)?);
        Ok(())
    })?;
    table.row(
        &format!("diagnostic: `parse_bundle` alone (JSON), {large} signed"),
        n,
        &Times::of(&parse_runs),
        &Rates::of(&parse_runs, n),
        None,
        "",
    );
    let verify_runs = timed(runs, || fixture.verify(&pretty, n, n))?;
    let verify_times = Times::of(&verify_runs);
    table.figure("verify_bundle_signed_ms", verify_times.median.as_secs_f64() * 1e3);
    table.figure("verify_bundle_signed_per_s", Rates::of(&verify_runs, n).median);
    let target = if large == 10_000 {
        if verify_times.median <= BUNDLE_TARGET {
            "≤ 500 ms: **met**"
        } else {
            "≤ 500 ms: **not met**"
        }
    } else {
        "(target is for 10 k)"
    };
    table.row(
        &format!("**`verify_bundle`, {large} records, every one producer-signed**"),
        n,
        &verify_times,
        &Rates::of(&verify_runs, n),
        Some(("`verify_batch`", batch_rate.median)),
        target,
    );
    let unsigned_runs = timed(runs, || fixture.verify(&unsigned_bytes, 0, n))?;
    table.figure(
        "verify_bundle_unsigned_ms",
        Times::of(&unsigned_runs).median.as_secs_f64() * 1e3,
    );
    table.row(
        &format!(
            "`verify_bundle`, {large} records, unsigned ({:.1} MiB)",
            mib(unsigned_bytes.len())
        ),
        n,
        &Times::of(&unsigned_runs),
        &Rates::of(&unsigned_runs, n),
        Some(("`verify_batch`", batch_rate.median)),
        "",
    );
    Ok(())
}

/// The chain's records in two contiguous buffers.
struct ChainFixture {
    records: u64,
    canonical: Vec<u8>,
    canonical_ends: Vec<usize>,
    payloads: Vec<u8>,
    payload_ends: Vec<usize>,
    head_hash: [u8; 32],
}

impl ChainFixture {
    fn create(records: u64) -> AnyResult<ChainFixture> {
        let dir = bench_dir()?;
        let config = LedgerConfig {
            unsafe_no_sync: true,
            ..bench_config()
        };
        let ledger = open_ledger_with(dir.path(), config)?;
        let mut source = SampleEvidence::new(SEED);
        let mut left = records;
        while left > 0 {
            let n = left.min(FILL_BATCH as u64);
            ledger.append(AppendRequest::new(source.take_events(n as usize)))?;
            left -= n;
        }
        let mut fixture = ChainFixture {
            records,
            canonical: Vec::new(),
            canonical_ends: Vec::with_capacity(records as usize),
            payloads: Vec::new(),
            payload_ends: Vec::with_capacity(records as usize),
            head_hash: GENESIS_PREV_HASH,
        };
        ledger.scan_chunks(0, records, READ_CHUNK, &mut |chunk| {
            for record in chunk {
                fixture.canonical.extend_from_slice(&record.canonical);
                fixture.canonical_ends.push(fixture.canonical.len());
                fixture.payloads.extend_from_slice(&record.payload);
                fixture.payload_ends.push(fixture.payloads.len());
                fixture.head_hash = record.record_hash;
            }
            true
        })?;
        ledger.wait_indexed()?;
        ledger.close()?;
        if fixture.canonical_ends.len() as u64 != records {
            return Err(io::Error::other(format!(
                "read {} records, expected {records}",
                fixture.canonical_ends.len()
            ))
            .into());
        }
        Ok(fixture)
    }

    /// (canonical, payload) of every record, in seq order.
    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let starts = std::iter::once(0).chain(self.canonical_ends.iter().copied());
        let payload_starts = std::iter::once(0).chain(self.payload_ends.iter().copied());
        starts
            .zip(&self.canonical_ends)
            .zip(payload_starts.zip(&self.payload_ends))
            .map(|((start, &end), (p_start, &p_end))| (&self.canonical[start..end], &self.payloads[p_start..p_end]))
    }

    fn verify(&self, with_payloads: bool) -> AnyResult<()> {
        let mut verifier = ChainVerifier::new();
        for (canonical, payload) in self.iter() {
            verifier.push(canonical, with_payloads.then_some(payload))?;
        }
        let head = verifier.head();
        if (head.count, head.hash) != (self.records, self.head_hash) {
            return Err(io::Error::other("the chain verified to another head").into());
        }
        Ok(())
    }

    /// The same checks with the allocating decode (what a verifier built
    /// on `RecordHeader::decode` would cost).
    fn verify_with_owned_decode(&self) -> AnyResult<()> {
        let mut prev_hash = GENESIS_PREV_HASH;
        let mut last_recorded_at = i64::MIN;
        for (seq, (canonical, _)) in (0u64..).zip(self.iter()) {
            let header = RecordHeader::decode(canonical).map_err(|source| ChainError::Decode { seq, source })?;
            if header.seq != seq || header.prev_hash != prev_hash || header.recorded_at_ns < last_recorded_at {
                return Err(io::Error::other(format!("seq {seq} does not extend the chain")).into());
            }
            last_recorded_at = header.recorded_at_ns;
            prev_hash = blake3(canonical);
        }
        if prev_hash != self.head_hash {
            return Err(io::Error::other("the chain verified to another head").into());
        }
        Ok(())
    }
}

fn chain_rows(table: &mut Table, chain: &ChainFixture, runs: usize) -> AnyResult<()> {
    let n = chain.records;
    eprintln!("verifying the chain…");
    let (mut raw, mut verified, mut raw_payloads, mut verified_payloads, mut owned) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        // Interleaved: each verifier run right after its baseline.
        raw.extend(timed(1, || {
            for (canonical, _) in chain.iter() {
                std::hint::black_box(blake3(std::hint::black_box(canonical)));
            }
            Ok(())
        })?);
        verified.extend(timed(1, || chain.verify(false))?);
        raw_payloads.extend(timed(1, || {
            for (canonical, payload) in chain.iter() {
                std::hint::black_box(blake3(std::hint::black_box(canonical)));
                std::hint::black_box(blake3(std::hint::black_box(payload)));
            }
            Ok(())
        })?);
        verified_payloads.extend(timed(1, || chain.verify(true))?);
        owned.extend(timed(1, || chain.verify_with_owned_decode())?);
    }
    let raw_rate = Rates::of(&raw, n);
    let raw_payload_rate = Rates::of(&raw_payloads, n);
    let verified_rate = Rates::of(&verified, n);
    table.figure("chain_raw_blake3_per_s", raw_rate.median);
    table.figure("chain_verifier_per_s", verified_rate.median);
    let target = if n == 1_000_000 {
        if verified_rate.median >= CHAIN_TARGET * raw_rate.median {
            "≥ 60 % of raw BLAKE3: **met**"
        } else {
            "≥ 60 % of raw BLAKE3: **not met**"
        }
    } else {
        "(target is for 1 M)"
    };
    table.row(
        &format!(
            "raw BLAKE3 of every canonical record ({} B avg, {:.0} MiB)",
            chain.canonical.len() as u64 / n,
            mib(chain.canonical.len())
        ),
        n,
        &Times::of(&raw),
        &raw_rate,
        None,
        "",
    );
    table.row(
        "**`ChainVerifier`, canonical bytes only**",
        n,
        &Times::of(&verified),
        &verified_rate,
        Some(("raw BLAKE3", raw_rate.median)),
        target,
    );
    table.row(
        "diagnostic: the same checks with the allocating `RecordHeader::decode`",
        n,
        &Times::of(&owned),
        &Rates::of(&owned, n),
        Some(("raw BLAKE3", raw_rate.median)),
        "",
    );
    table.row(
        &format!(
            "raw BLAKE3 of every canonical record and payload ({} B payload avg)",
            chain.payloads.len() as u64 / n
        ),
        n,
        &Times::of(&raw_payloads),
        &raw_payload_rate,
        None,
        "",
    );
    table.row(
        "`ChainVerifier`, payloads checked too",
        n,
        &Times::of(&verified_payloads),
        &Rates::of(&verified_payloads, n),
        Some(("raw BLAKE3 + payload", raw_payload_rate.median)),
        "",
    );
    Ok(())
}

/// Runs `f` `runs` times; the time of each run.
fn timed(runs: usize, mut f: impl FnMut() -> AnyResult<()>) -> AnyResult<Vec<Duration>> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    Ok(times)
}

/// Median, min and max of run times.
#[derive(Clone, Copy, Debug)]
struct Times {
    median: Duration,
    min: Duration,
    max: Duration,
}

impl Times {
    fn of(times: &[Duration]) -> Times {
        let mut sorted = times.to_vec();
        sorted.sort();
        Times {
            median: sorted[sorted.len() / 2],
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }

    /// The time of one of `passes` equal passes.
    fn per(self, passes: usize) -> Times {
        let passes = passes as u32;
        Times {
            median: self.median / passes,
            min: self.min / passes,
            max: self.max / passes,
        }
    }

    fn cell(&self) -> String {
        format!("{} ({}–{})", fmt_ms(self.median), fmt_ms(self.min), fmt_ms(self.max))
    }
}

/// Median, min and max of records/s.
#[derive(Clone, Copy, Debug)]
struct Rates {
    median: f64,
    min: f64,
    max: f64,
}

impl Rates {
    fn of(times: &[Duration], records: u64) -> Rates {
        let mut rates: Vec<f64> = times.iter().map(|t| records as f64 / t.as_secs_f64()).collect();
        rates.sort_by(f64::total_cmp);
        Rates {
            median: rates[rates.len() / 2],
            min: rates[0],
            max: rates[rates.len() - 1],
        }
    }

    fn cell(&self) -> String {
        format!(
            "{} ({}–{})",
            fmt_rate(self.median),
            fmt_rate(self.min),
            fmt_rate(self.max)
        )
    }
}

/// The Markdown table, printed at the end so progress messages (stderr)
/// do not interleave with it; with its rows and headline figures as JSON
/// for `--json`.
#[derive(Debug, Default)]
struct Table {
    rows: Vec<String>,
    json: Vec<Value>,
    figures: BTreeMap<&'static str, f64>,
}

impl Table {
    fn row(
        &mut self,
        label: &str,
        records: u64,
        times: &Times,
        rates: &Rates,
        baseline: Option<(&str, f64)>,
        target: &str,
    ) {
        let ratio = baseline.map_or(String::new(), |(name, rate)| {
            format!("{:.0} % of {name}", 100.0 * rates.median / rate)
        });
        self.json.push(json!({
            "what": label,
            "records": records,
            "ms": times.median.as_secs_f64() * 1e3,
            "records_per_s": {"median": rates.median, "min": rates.min, "max": rates.max},
            "baseline": baseline.map(|(name, rate)| json!({"name": name, "records_per_s": rate})),
            "target": target,
        }));
        self.rows.push(format!(
            "| {label} | {records} | {} | {} | {ratio} | {target} |",
            times.cell(),
            rates.cell()
        ));
    }

    /// A headline figure for `--json`, by a stable name.
    fn figure(&mut self, name: &'static str, value: f64) {
        self.figures.insert(name, value);
    }

    fn print(&self) {
        println!("| what | records | time | records/s | vs baseline | target |");
        println!("|---|---:|---:|---:|---:|---|");
        for row in &self.rows {
            println!("{row}");
        }
    }
}

fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

fn fmt_rate(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.0} k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
