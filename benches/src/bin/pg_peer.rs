//! The PostgreSQL peer of the gRPC ingest benchmark (issue 6): the same
//! 256-byte events appended to what a team would build instead of the
//! ledger, an append-only, hash-chained audit table in PostgreSQL, with
//! fsync and `synchronous_commit` on.
//!
//! `cargo run --release -p ledger-benches --features pg --bin pg_peer -- --conn 'host=127.0.0.1 port=5432 user=bench dbname=postgres' [--quick] [--seconds N] [--tsv FILE]`
//!
//! Normally run by `benches/pg/run.sh`, which starts a throwaway server,
//! runs this and our own ingest in one go, and removes the server. This
//! binary does not start or stop PostgreSQL; it drops and recreates its two
//! tables (`evidence`, `chain_head`) in the database it is pointed at.
//!
//! - P producers (1 and 8), each with its own connection over TCP, append
//!   for a fixed time (10 s per workload, 3 s with `--quick`);
//! - per-event transactions (one event per commit) and 100-event
//!   transactions (one multi-row `INSERT … SELECT FROM unnest(…)` per
//!   commit, the fastest plain-SQL way to insert a batch);
//! - the chain is real: every transaction locks the one-row `chain_head`
//!   (`SELECT … FOR UPDATE`), hashes its events onto the head it read with
//!   BLAKE3 (see [`record_hash`]), inserts them and moves the head, then
//!   commits. The lock is what keeps two producers from forking the chain,
//!   and it serialises them up to and including the commit's WAL flush;
//! - commit latency is measured per transaction, from `BEGIN` to the
//!   acknowledged `COMMIT` (lock wait included), like our ack latency;
//! - after each workload the whole table is read back in `seq` order and
//!   the chain recomputed and compared, so the peer is known to have done
//!   the work it is credited with.
//!
//! It refuses a server with `fsync` or `synchronous_commit` off.

use std::io::Write as _;
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use hdrhistogram::Histogram;
use ledger_benches::{PAYLOAD_BYTES, health_event};
use postgres::fallible_iterator::FallibleIterator as _;
use postgres::{Client, NoTls};
use uuid::Uuid;

/// Events per transaction in the batched workload (our gRPC batch size).
const BATCH: usize = 100;

/// The head of an empty chain.
const GENESIS: [u8; 32] = [0; 32];

/// The schema. `seq` is assigned by the producer from `chain_head` while it
/// holds the lock, so it is gap-free and equal to chain order (a `bigserial`
/// default would hand numbers out outside the lock and leave gaps on
/// rollback), and the hash commits to it, as our record header does. The
/// trigger makes the table append-only for ordinary SQL; it fires only on
/// `UPDATE`/`DELETE`, so inserts do not pay for it.
const SCHEMA: &str = r"
DROP TABLE IF EXISTS evidence, chain_head;
DROP FUNCTION IF EXISTS evidence_append_only();
CREATE TABLE evidence (
    seq         bigint PRIMARY KEY,
    id          uuid NOT NULL UNIQUE,
    stream      text NOT NULL,
    type        text NOT NULL,
    occurred_at timestamptz NOT NULL,
    payload     bytea NOT NULL,
    prev_hash   bytea NOT NULL,
    record_hash bytea NOT NULL
);
CREATE FUNCTION evidence_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'evidence is append-only';
END $$;
CREATE TRIGGER evidence_append_only BEFORE UPDATE OR DELETE ON evidence
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_append_only();
CREATE TABLE chain_head (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    last_seq    bigint NOT NULL,
    record_hash bytea NOT NULL
);
INSERT INTO chain_head (last_seq, record_hash) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000');
";

const LOCK_HEAD: &str = "SELECT last_seq, record_hash FROM chain_head WHERE one FOR UPDATE";
const MOVE_HEAD: &str = "UPDATE chain_head SET last_seq = $1, record_hash = $2 WHERE one";
const INSERT_ONE: &str = "INSERT INTO evidence (seq, id, stream, type, occurred_at, payload, prev_hash, record_hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const INSERT_MANY: &str = "INSERT INTO evidence (seq, id, stream, type, occurred_at, payload, prev_hash, record_hash) \
     SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], \
     $6::bytea[], $7::bytea[], $8::bytea[])";
const READ_CHAIN: &str = "SELECT seq, id, stream, type, occurred_at, payload, prev_hash, record_hash \
     FROM evidence ORDER BY seq";

/// One row of `evidence`, as hashed.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    seq: i64,
    id: Uuid,
    stream: String,
    event_type: String,
    /// Microseconds since the Unix epoch: `timestamptz` has microsecond
    /// precision, so this is what survives the round trip.
    occurred_at_us: i64,
    payload: Vec<u8>,
}

/// `record_hash = BLAKE3(prev_hash ‖ seq ‖ id ‖ stream ‖ type ‖ occurred_at ‖ payload)`,
/// little-endian: `seq` and `occurred_at` (µs) as i64, `id` as its 16
/// bytes, each string and the payload preceded by its length as u32.
fn record_hash(prev_hash: &[u8; 32], row: &Row) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev_hash);
    hasher.update(&row.seq.to_le_bytes());
    hasher.update(row.id.as_bytes());
    for field in [row.stream.as_bytes(), row.event_type.as_bytes()] {
        hasher.update(&(field.len() as u32).to_le_bytes());
        hasher.update(field);
    }
    hasher.update(&row.occurred_at_us.to_le_bytes());
    hasher.update(&(row.payload.len() as u32).to_le_bytes());
    hasher.update(&row.payload);
    *hasher.finalize().as_bytes()
}

fn to_system_time(us: i64) -> SystemTime {
    if us >= 0 {
        UNIX_EPOCH + Duration::from_micros(us.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
    }
}

fn from_system_time(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_micros() as i64,
        Err(before) => -(before.duration().as_micros() as i64),
    }
}

fn hash32(bytes: &[u8], what: &str) -> anyhow::Result<[u8; 32]> {
    bytes
        .try_into()
        .with_context(|| format!("{what} is {} bytes, not 32", bytes.len()))
}

/// The `n`-th bench event (the same ops-hub event our benchmarks append)
/// as a row at `seq`.
fn event_row(n: u64) -> Row {
    let event = health_event(n);
    Row {
        seq: 0,
        id: event.id,
        stream: event.stream,
        event_type: event.event_type,
        occurred_at_us: event.occurred_at.timestamp_micros(),
        payload: event.payload,
    }
}

/// One workload's outcome.
struct Outcome {
    producers: usize,
    per_txn: usize,
    events: u64,
    transactions: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
    verify: Duration,
    wal: Option<WalStats>,
}

/// What the workload cost in WAL, from `pg_stat_wal` (PostgreSQL 14+).
struct WalStats {
    /// Bytes of WAL written (from the WAL insert position).
    bytes: f64,
    /// WAL syncs (`fdatasync`s with the default `wal_sync_method`).
    syncs: i64,
    /// Time spent in them, ms; zero unless `track_wal_io_timing` is on.
    sync_ms: f64,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    fn ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
    fn workload(&self) -> String {
        if self.per_txn == 1 {
            "per-event transactions".to_string()
        } else {
            format!("{}-event transactions", self.per_txn)
        }
    }
}

/// `12.3k` from 10,000 events/s up, else the whole number.
fn rate(events_per_s: f64) -> String {
    if events_per_s >= 10_000.0 {
        format!("{:.1}k", events_per_s / 1000.0)
    } else {
        format!("{events_per_s:.0}")
    }
}

/// Resets the WAL counters; the WAL insert position to measure bytes from.
/// `None` where the server has no `pg_stat_wal` or we may not reset it.
fn wal_start(client: &mut Client) -> Option<f64> {
    client
        .query_one(
            "SELECT pg_stat_reset_shared('wal'), (pg_current_wal_lsn() - '0/0')::float8",
            &[],
        )
        .ok()?
        .try_get(1)
        .ok()
}

/// The WAL counters since [`wal_start`]. Backends report their counters
/// when they exit or at most once a second, hence the pause.
fn wal_end(client: &mut Client, start_lsn: Option<f64>) -> Option<WalStats> {
    let start_lsn = start_lsn?;
    std::thread::sleep(Duration::from_millis(1200));
    let row = client
        .query_one(
            "SELECT (pg_current_wal_lsn() - '0/0')::float8, wal_sync, wal_sync_time FROM pg_stat_wal",
            &[],
        )
        .ok()?;
    Some(WalStats {
        bytes: row.try_get::<_, f64>(0).ok()? - start_lsn,
        syncs: row.try_get(1).ok()?,
        sync_ms: row.try_get(2).ok()?,
    })
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// One producer: its own connection, transactions of `per_txn` events
/// for `seconds` after the barrier. Events are numbered `first, first + stride, …` so
/// producers never share a probe-run number.
fn produce(
    conn: &str,
    per_txn: usize,
    first: u64,
    stride: u64,
    barrier: &Barrier,
    seconds: f64,
) -> anyhow::Result<(u64, u64, Histogram<u64>)> {
    let mut client = Client::connect(conn, NoTls).context("producer connect")?;
    let lock_head = client.prepare(LOCK_HEAD)?;
    let move_head = client.prepare(MOVE_HEAD)?;
    let insert = client.prepare(if per_txn == 1 { INSERT_ONE } else { INSERT_MANY })?;
    let mut latency = histogram()?;
    let (mut events, mut transactions) = (0u64, 0u64);
    let mut n = first;
    barrier.wait();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline {
        let mut rows: Vec<Row> = (0..per_txn).map(|i| event_row(n + i as u64 * stride)).collect();
        n += per_txn as u64 * stride;
        let started = Instant::now();
        let mut tx = client.transaction()?;
        let head = tx.query_one(&lock_head, &[])?;
        let last_seq: i64 = head.try_get(0)?;
        let mut prev = hash32(head.try_get(1)?, "chain_head.record_hash")?;
        let mut prev_hashes = Vec::with_capacity(per_txn);
        let mut hashes = Vec::with_capacity(per_txn);
        for (i, row) in rows.iter_mut().enumerate() {
            row.seq = last_seq + 1 + i as i64;
            let hash = record_hash(&prev, row);
            prev_hashes.push(prev.to_vec());
            hashes.push(hash.to_vec());
            prev = hash;
        }
        if per_txn == 1 {
            let row = &rows[0];
            tx.execute(
                &insert,
                &[
                    &row.seq,
                    &row.id,
                    &row.stream,
                    &row.event_type,
                    &to_system_time(row.occurred_at_us),
                    &row.payload,
                    &prev_hashes[0],
                    &hashes[0],
                ],
            )?;
        } else {
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            let streams: Vec<&str> = rows.iter().map(|r| r.stream.as_str()).collect();
            let types: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
            let times: Vec<SystemTime> = rows.iter().map(|r| to_system_time(r.occurred_at_us)).collect();
            let payloads: Vec<&[u8]> = rows.iter().map(|r| r.payload.as_slice()).collect();
            let inserted = tx.execute(
                &insert,
                &[&seqs, &ids, &streams, &types, &times, &payloads, &prev_hashes, &hashes],
            )?;
            ensure!(inserted == per_txn as u64, "inserted {inserted} rows, not {per_txn}");
        }
        let new_last = last_seq + per_txn as i64;
        tx.execute(&move_head, &[&new_last, &prev.as_slice()])?;
        tx.commit()?;
        latency.record(started.elapsed().as_micros().max(1) as u64)?;
        events += per_txn as u64;
        transactions += 1;
    }
    Ok((events, transactions, latency))
}

/// Recomputes the whole chain from the table, in `seq` order, and checks it
/// against the stored hashes, the head and the number of events the
/// producers were acknowledged for.
fn verify(client: &mut Client, acknowledged: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    // Nothing writes while we check: read the head first.
    let head = client.query_one("SELECT last_seq, record_hash FROM chain_head", &[])?;
    let head_seq: i64 = head.try_get(0)?;
    let head_hash = hash32(head.try_get(1)?, "chain_head.record_hash")?;
    let mut prev = GENESIS;
    let mut n_records: u64 = 0;
    let mut rows = client.query_raw(READ_CHAIN, std::iter::empty::<&dyn postgres::types::ToSql>())?;
    while let Some(stored) = rows.next()? {
        let row = Row {
            seq: stored.try_get(0)?,
            id: stored.try_get(1)?,
            stream: stored.try_get(2)?,
            event_type: stored.try_get(3)?,
            occurred_at_us: from_system_time(stored.try_get(4)?),
            payload: stored.try_get(5)?,
        };
        let seq = row.seq;
        ensure!(seq == n_records as i64 + 1, "seq {seq} follows {n_records}");
        ensure!(
            row.payload.len() == PAYLOAD_BYTES,
            "seq {seq}: payload of {} bytes",
            row.payload.len()
        );
        let prev_hash = hash32(stored.try_get(6)?, "prev_hash")?;
        ensure!(
            prev_hash == prev,
            "seq {seq}: prev_hash does not match the previous record_hash"
        );
        let expected = record_hash(&prev, &row);
        let stored_hash = hash32(stored.try_get(7)?, "record_hash")?;
        ensure!(stored_hash == expected, "seq {seq}: record_hash does not recompute");
        prev = expected;
        n_records += 1;
    }
    ensure!(
        n_records == acknowledged,
        "{n_records} records in the table, {acknowledged} acknowledged"
    );
    ensure!(
        head_seq == n_records as i64,
        "chain_head at {head_seq}, table at {n_records}"
    );
    ensure!(head_hash == prev, "chain_head hash is not the last record's");
    Ok(started.elapsed())
}

/// Fresh tables, a checkpoint so that no workload inherits the last one's
/// dirty pages, then `producers` producers for `seconds`, then the check.
fn workload(conn: &str, producers: usize, per_txn: usize, seconds: f64) -> anyhow::Result<Outcome> {
    let mut admin = Client::connect(conn, NoTls).context("connect")?;
    admin.batch_execute(SCHEMA)?;
    if let Err(error) = admin.batch_execute("CHECKPOINT") {
        eprintln!("note: CHECKPOINT failed ({error}); continuing without it");
    }
    let wal_lsn = wal_start(&mut admin);
    let barrier = Barrier::new(producers + 1);
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..producers)
            .map(|p| {
                let barrier = &barrier;
                scope.spawn(move || produce(conn, per_txn, p as u64, producers as u64, barrier, seconds))
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let results: Vec<_> = workers
            .into_iter()
            .map(|worker| match worker.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect();
        (results, start.elapsed())
    });
    let (results, elapsed) = results;
    let mut latency_us = histogram()?;
    let (mut events, mut transactions) = (0, 0);
    for result in results {
        let (e, t, l) = result?;
        events += e;
        transactions += t;
        latency_us.add(l)?;
    }
    let wal = wal_end(&mut admin, wal_lsn);
    let verify = verify(&mut admin, events)?;
    Ok(Outcome {
        producers,
        per_txn,
        events,
        transactions,
        elapsed,
        latency_us,
        verify,
        wal,
    })
}

/// The server's version and durability settings; fails if commits would
/// not be durable.
fn server_settings(conn: &str) -> anyhow::Result<String> {
    let mut client = Client::connect(conn, NoTls).context("connect")?;
    let mut show =
        |name: &str| -> anyhow::Result<String> { Ok(client.query_one(&format!("SHOW {name}"), &[])?.try_get(0)?) };
    let version = show("server_version")?;
    let fsync = show("fsync")?;
    let synchronous_commit = show("synchronous_commit")?;
    let full_page_writes = show("full_page_writes")?;
    let wal_sync_method = show("wal_sync_method")?;
    if fsync != "on" || synchronous_commit != "on" {
        bail!("fsync = {fsync}, synchronous_commit = {synchronous_commit}: the peer must commit durably");
    }
    Ok(format!(
        "PostgreSQL {version}: fsync = {fsync}, synchronous_commit = {synchronous_commit}, \
         full_page_writes = {full_page_writes}, wal_sync_method = {wal_sync_method}"
    ))
}

struct Args {
    conn: String,
    seconds: f64,
    producers: Vec<usize>,
    tsv: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        conn: std::env::var("PG_PEER_CONN").unwrap_or_default(),
        seconds: 10.0,
        producers: vec![1, 8],
        tsv: None,
    };
    let mut quick = false;
    let mut seconds = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => quick = true,
            "--conn" => args.conn = value()?,
            "--seconds" => seconds = Some(value()?.parse().context("--seconds")?),
            "--producers" => {
                args.producers = value()?
                    .split(',')
                    .map(|p| p.parse::<usize>().context("--producers"))
                    .collect::<anyhow::Result<_>>()?;
            }
            "--tsv" => args.tsv = Some(value()?),
            other => bail!(
                "unknown argument {other}; usage: pg_peer --conn 'host=… port=… user=… dbname=…' \
                 [--quick] [--seconds N] [--producers 1,8] [--tsv FILE]"
            ),
        }
    }
    args.seconds = seconds.unwrap_or(if quick { 3.0 } else { 10.0 });
    ensure!(!args.conn.is_empty(), "no --conn (or PG_PEER_CONN) given");
    ensure!(args.producers.iter().all(|&p| p > 0), "--producers must be positive");
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    println!("{}", server_settings(&args.conn)?);
    println!(
        "hash-chained audit table, {} s per workload, events of {PAYLOAD_BYTES} B, one connection per producer",
        args.seconds
    );
    println!();
    println!(
        "| workload | producers | events/s | txn/s | commit p50 ms | commit p99 ms | commit max ms | WAL B/event | WAL syncs/s | mean sync ms | chain verified |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut tsv = Vec::new();
    for per_txn in [1, BATCH] {
        for &producers in &args.producers {
            let outcome = workload(&args.conn, producers, per_txn, args.seconds)?;
            let seconds = outcome.elapsed.as_secs_f64();
            let (wal_per_event, syncs_per_s, mean_sync) = match &outcome.wal {
                Some(wal) => (
                    format!("{:.0}", wal.bytes / outcome.events.max(1) as f64),
                    format!("{:.0}", wal.syncs as f64 / seconds),
                    if wal.sync_ms > 0.0 && wal.syncs > 0 {
                        format!("{:.2}", wal.sync_ms / wal.syncs as f64)
                    } else {
                        "–".to_string()
                    },
                ),
                None => ("–".to_string(), "–".to_string(), "–".to_string()),
            };
            println!(
                "| PostgreSQL, {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {wal_per_event} | {syncs_per_s} | {mean_sync} | {} records in {} ms |",
                outcome.workload(),
                outcome.producers,
                rate(outcome.rate()),
                outcome.transactions as f64 / seconds,
                outcome.ms(0.5),
                outcome.ms(0.99),
                outcome.latency_us.max() as f64 / 1000.0,
                outcome.events,
                outcome.verify.as_millis()
            );
            tsv.push(format!(
                "peer\t{}\t{}\t{}\t{}\t{:.3}\t{:.1}\t{:.3}\t{:.3}",
                if per_txn == 1 { "per-event" } else { "batched" },
                outcome.producers,
                outcome.per_txn,
                outcome.events,
                outcome.elapsed.as_secs_f64(),
                outcome.rate(),
                outcome.ms(0.5),
                outcome.ms(0.99)
            ));
        }
    }
    if let Some(path) = &args.tsv {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {path}"))?;
        for line in tsv {
            writeln!(file, "{line}")?;
        }
    }
    // Leave nothing behind in a database we did not create.
    let mut client = Client::connect(&args.conn, NoTls)?;
    client
        .batch_execute("DROP TABLE IF EXISTS evidence, chain_head; DROP FUNCTION IF EXISTS evidence_append_only();")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_hash_commits_to_every_field_and_the_previous_hash() {
        let row = event_row(42);
        let base = record_hash(&GENESIS, &row);
        assert_ne!(record_hash(&[1; 32], &row), base);
        let changes: [fn(&mut Row); 6] = [
            |r| r.seq += 1,
            |r| r.id = Uuid::nil(),
            |r| r.stream.push('x'),
            |r| r.event_type.push('x'),
            |r| r.occurred_at_us += 1,
            |r| r.payload[0] ^= 1,
        ];
        for change in changes {
            let mut changed = row.clone();
            change(&mut changed);
            assert_ne!(record_hash(&GENESIS, &changed), base);
        }
    }

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        for us in [0, 1, -1, 1_750_000_000_123_456, -86_400_000_001] {
            assert_eq!(from_system_time(to_system_time(us)), us);
        }
    }
}
