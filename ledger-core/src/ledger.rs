//! [`Ledger`]: the central type. Opening runs recovery (one verifying pass
//! over the log, which also brings the index store up to date), then starts
//! the group-commit writer and the indexer threads.
//!
//! Directory layout:
//!
//! ```text
//! <dir>/ledger.json     identity: ledger id, origin, tree hash, creation time
//! <dir>/LOCK            held (flock) while open: one process per ledger
//! <dir>/log/*.seg       the segments: the only source of truth
//! <dir>/index/          sled: derived indexes and tree nodes (rebuildable)
//! <dir>/checkpoint      latest signed checkpoint (a hint for tamper checks)
//! ```

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use ledger_verify::merkle::{Frontier, NodeSource, consistency_proof, inclusion_proof, subtree_root};
use ledger_verify::note::{VerifierKey, open_checkpoint};
use ledger_verify::{Hash, HashAlg};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::checkpoint::{SignedCheckpoint, sign_checkpoint};
use crate::commit::{AppendOutcome, Command, Writer};
use crate::config::LedgerConfig;
use crate::error::{LedgerError, Result};
use crate::event::{AppendRequest, Checks, prepare, timestamp_ns};
use crate::ids::{IdIndex, IdIndexStats};
use crate::indexer::{self, IndexState};
use crate::producer::{ProducerKeyResolver, verify_signatures};
use crate::reader::{read_one, read_range, scan_chunks, scan_chunks_reusing};
use crate::record::Record;
use crate::rotation::check_not_retired;
use crate::scan::SecretScanner;
use crate::segment::file::sync_dir;
use crate::segment::index::LogIndex;
use crate::segment::prealloc::Prealloc;
use crate::segment::recovery::{ScanOutcome, open_tail, scan_log};
use crate::signer::Signer;
use crate::store::{DERIVED_LEVELS, IndexBatch, IndexedEvent, LEAF_RUN, SledStore, Store, TreeNode};

/// Fixed at creation and stored in `ledger.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerIdentity {
    /// Random id of this ledger.
    pub ledger_id: Uuid,
    /// Checkpoint origin line.
    pub origin: String,
    /// Merkle tree hash.
    pub tree_hash: HashAlg,
    /// Creation time, Unix nanoseconds.
    pub created_at_ns: i64,
}

const IDENTITY_FORMAT: &str = "evidence-ledger/1";

/// State shared by the handle, the writer and the indexer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: LedgerConfig,
    pub(crate) dir: PathBuf,
    pub(crate) log_dir: PathBuf,
    pub(crate) identity: LedgerIdentity,
    pub(crate) log: RwLock<LogIndex>,
    /// Event id → seq of every committed record (and, between the fsync
    /// and the publish of a group, of that group: readers bound by the
    /// committed length). Only the writer changes it after open.
    pub(crate) ids: IdIndex,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) index: Arc<IndexState>,
    /// The key that signs checkpoints and bundles. Only the writer thread
    /// changes it, at a key rotation, between two group commits (see
    /// `commit.rs` and `rotation.rs`).
    signer: RwLock<Arc<dyn Signer>>,
    len_tx: watch::Sender<u64>,
    /// Wakes threads blocked in [`Ledger::wait_len_beyond`] (the watch
    /// channel serves async waiters).
    len_changed: (Mutex<()>, Condvar),
    head: RwLock<Arc<SignedCheckpoint>>,
}

impl Shared {
    /// The key signing from now on.
    pub(crate) fn signer(&self) -> Arc<dyn Signer> {
        match self.signer.read() {
            Ok(signer) => Arc::clone(&signer),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Hands signing over to `signer`. The writer calls it, before it
    /// publishes the first tree the new key signs.
    pub(crate) fn set_signer(&self, signer: Arc<dyn Signer>) {
        match self.signer.write() {
            Ok(mut current) => *current = signer,
            Err(poisoned) => *poisoned.into_inner() = signer,
        }
    }

    pub(crate) fn latest_checkpoint(&self) -> Arc<SignedCheckpoint> {
        match self.head.read() {
            Ok(head) => Arc::clone(&head),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Makes a committed group visible: readers first see the new length
    /// only after the records are durable.
    pub(crate) fn publish(&self, len: u64, checkpoint: Arc<SignedCheckpoint>) {
        match self.head.write() {
            Ok(mut head) => *head = checkpoint,
            Err(poisoned) => *poisoned.into_inner() = checkpoint,
        }
        self.len_tx.send_replace(len);
        let (lock, changed) = &self.len_changed;
        drop(lock.lock());
        changed.notify_all();
    }

    fn committed(&self) -> u64 {
        *self.len_tx.borrow()
    }
}

/// Tree nodes served from the store; those of the levels it does not
/// store ([`DERIVED_LEVELS`]) recomputed from the leaves under them.
struct StoreNodes<'a> {
    store: &'a dyn Store,
    alg: HashAlg,
    /// The last run of leaves read: a proof's siblings at levels 0..=5 all
    /// lie in one.
    leaves: RefCell<Option<(u64, Vec<Hash>)>>,
}

impl<'a> StoreNodes<'a> {
    fn new(store: &'a dyn Store, alg: HashAlg) -> StoreNodes<'a> {
        StoreNodes {
            store,
            alg,
            leaves: RefCell::new(None),
        }
    }

    /// The root over leaves `[first, first + count)`, a perfect subtree
    /// inside one run; `None` if a leaf is missing.
    fn derive(&self, first: u64, count: usize) -> Result<Option<Hash>> {
        let run_start = first - first % LEAF_RUN;
        let mut cached = self.leaves.borrow_mut();
        if cached.as_ref().is_none_or(|(start, _)| *start != run_start) {
            *cached = Some((run_start, self.store.node_run(0, run_start, LEAF_RUN as usize)?));
        }
        let Some((_, run)) = cached.as_ref() else {
            return Ok(None);
        };
        let from = (first - run_start) as usize;
        let Some(leaves) = run.get(from..from + count) else {
            return Ok(None);
        };
        let mut level: Vec<Hash> = leaves.to_vec();
        while level.len() > 1 {
            level = level
                .chunks_exact(2)
                .map(|pair| self.alg.node_hash(&pair[0], &pair[1]))
                .collect();
        }
        Ok(level.first().copied())
    }
}

impl NodeSource for StoreNodes<'_> {
    type Error = LedgerError;

    fn node(&self, level: u32, index: u64) -> Result<Hash> {
        let node = if DERIVED_LEVELS.contains(&level) {
            self.derive(index << level, 1 << level)?
        } else {
            self.store.node(level, index)?
        };
        node.ok_or_else(|| LedgerError::Store(format!("tree node (level {level}, index {index}) is missing")))
    }
}

/// A batch queued by [`Ledger::submit`]: resolves to its outcome once the
/// batch is durable. Dropping it does not cancel the append.
#[derive(Debug)]
pub struct PendingAppend(oneshot::Receiver<Result<AppendOutcome>>);

impl std::future::Future for PendingAppend {
    type Output = Result<AppendOutcome>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|reply| reply.map_err(|_| LedgerError::Closed).and_then(|outcome| outcome))
    }
}

/// A batch that passed [`Ledger::check`]: its headers computed, ready for
/// the writer. It remembers which ledger checked it: another ledger (with
/// other limits or another scan policy) refuses it.
#[derive(Debug)]
pub struct CheckedBatch {
    command: Command,
    ledger_id: Uuid,
}

/// An open ledger. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct Ledger {
    shared: Arc<Shared>,
    commands: RwLock<Option<mpsc::Sender<Command>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    producer_keys: RwLock<Option<Arc<dyn ProducerKeyResolver>>>,
    /// Compiled from `config.secret_scan` at open.
    checks: Arc<Checks>,
    /// Held for a whole key rotation: one at a time.
    rotating: Mutex<()>,
    /// Held while `<dir>/checkpoint` is written.
    saving: Mutex<()>,
    _lock: File,
}

impl Ledger {
    /// Opens the ledger in `dir`, creating it if the directory is empty or
    /// missing. Verifies every segment (see `segment::recovery`).
    pub fn open(dir: impl AsRef<Path>, config: LedgerConfig, signer: Arc<dyn Signer>) -> Result<Ledger> {
        let dir = dir.as_ref().to_path_buf();
        // A bad scan configuration is refused before anything is touched.
        let scanner = SecretScanner::new(&config.secret_scan)?;
        std::fs::create_dir_all(&dir).map_err(|e| LedgerError::io(format!("creating {}", dir.display()), e))?;
        let lock = lock_dir(&dir)?;
        let identity = load_or_create_identity(&dir, &config)?;
        let log_dir = dir.join("log");
        std::fs::create_dir_all(&log_dir).map_err(|e| LedgerError::io(format!("creating {}", log_dir.display()), e))?;
        sync_dir(&dir)?;

        let store = SledStore::open_with_cache(&dir.join("index"), config.index_cache_bytes)?;
        let identity_key = store_identity(&identity);
        if store.identity()?.as_deref() != Some(identity_key.as_slice()) {
            if store.identity()?.is_some() {
                tracing::warn!("index store belongs to another ledger or has an older layout; rebuilding it");
            }
            store.clear()?;
            store.set_identity(&identity_key)?;
        }
        let store: Arc<dyn Store> = Arc::new(store);
        let saved = load_saved_checkpoint(&dir, &identity, signer.as_ref())?;
        let saved_size = saved.as_ref().map_or(0, |c| c.size);
        let ids_dir = dir.join("ids");
        let (scan, frontier, ids) = recover(&log_dir, &identity, store.as_ref(), saved_size, || {
            IdIndex::create(&ids_dir, config.id_memtable_ids)
        })?;
        if let Some(saved) = saved {
            check_saved_checkpoint(&saved, &identity, &log_dir, &scan, store.as_ref())?;
        }
        let log = RwLock::new(scan.index);
        check_not_retired(
            store.as_ref(),
            &log,
            scan.n_records,
            &identity.origin,
            &signer.verifier_key()?,
        )?;

        let initial = if scan.n_records == 0 {
            sign_checkpoint(
                signer.as_ref(),
                &identity.origin,
                identity.tree_hash,
                0,
                identity.tree_hash.empty_root(),
                [0; 32],
                identity.created_at_ns,
            )?
        } else {
            sign_checkpoint(
                signer.as_ref(),
                &identity.origin,
                identity.tree_hash,
                scan.n_records,
                frontier.root(),
                scan.last_hash,
                scan.last_recorded_at_ns,
            )?
        };
        let index_state = Arc::new(IndexState::default());
        index_state.lock()?.indexed_len = scan.n_records;
        let (len_tx, _) = watch::channel(scan.n_records);
        let (tail_path, tail_len) = scan.tail.clone();
        let shared = Arc::new(Shared {
            config: config.clone(),
            dir: dir.clone(),
            log_dir,
            identity,
            log,
            ids,
            store: Arc::clone(&store),
            index: Arc::clone(&index_state),
            signer: RwLock::new(Arc::clone(&signer)),
            len_tx,
            len_changed: (Mutex::new(()), Condvar::new()),
            head: RwLock::new(Arc::new(initial)),
        });
        let (index_tx, index_rx) = std::sync::mpsc::channel::<IndexBatch>();
        let (command_tx, mut command_rx) = mpsc::channel::<Command>(config.queue_depth.max(1));
        let mut file = open_tail(&tail_path)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(tail_len))
            .map_err(|e| LedgerError::io(format!("seeking {}", tail_path.display()), e))?;
        let step = if config.unsafe_no_sync {
            0
        } else {
            config.preallocate_bytes
        };
        let prealloc = Prealloc::new(step).map_err(|e| LedgerError::io("spawning the preallocation thread", e))?;
        prealloc
            .start(&file, tail_len, config.segment_max_bytes)
            .map_err(|e| LedgerError::io(format!("preallocating {}", tail_path.display()), e))?;
        let writer = Writer {
            shared: Arc::clone(&shared),
            file,
            path: tail_path,
            len: tail_len,
            next_seq: scan.n_records,
            last_hash: scan.last_hash,
            last_recorded_at_ns: scan.last_recorded_at_ns,
            frontier,
            stream_heads: Default::default(),
            index_tx,
            poisoned: None,
            scratch: Default::default(),
            signer,
            prealloc,
        };
        let indexer_store = Arc::clone(&store);
        let indexer = std::thread::Builder::new()
            .name("ledger-indexer".to_string())
            .spawn(move || indexer::run(indexer_store, index_state, index_rx))
            .map_err(|e| LedgerError::io("spawning the indexer thread", e))?;
        let writer = std::thread::Builder::new()
            .name("ledger-writer".to_string())
            .spawn(move || writer.run(&mut command_rx))
            .map_err(|e| LedgerError::io("spawning the writer thread", e))?;
        Ok(Ledger {
            shared,
            commands: RwLock::new(Some(command_tx)),
            threads: Mutex::new(vec![writer, indexer]),
            producer_keys: RwLock::new(None),
            checks: Arc::new(Checks {
                config: config.clone(),
                scanner,
            }),
            rotating: Mutex::new(()),
            saving: Mutex::new(()),
            _lock: lock,
        })
    }

    /// Sets the resolver used to check producer signatures. Without one,
    /// signed events are rejected (their key cannot be known).
    pub fn set_producer_keys(&self, resolver: Option<Arc<dyn ProducerKeyResolver>>) {
        match self.producer_keys.write() {
            Ok(mut keys) => *keys = resolver,
            Err(poisoned) => *poisoned.into_inner() = resolver,
        }
    }

    /// The public key of producer key `key_id`, revoked ones included (what
    /// a bundle publishes for the signatures it carries).
    pub fn producer_key_for_audit(&self, key_id: &str) -> Option<ed25519_dalek::VerifyingKey> {
        let resolver = match self.producer_keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        resolver.and_then(|r| r.audit_key(key_id))
    }

    /// The key that signs checkpoints (and bundles) from now on.
    pub(crate) fn signer(&self) -> Arc<dyn Signer> {
        self.shared.signer()
    }

    /// Held for a whole key rotation (`rotation.rs`).
    pub(crate) fn rotation_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        match self.rotating.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Appends the ledger's own rotation record (built and checked by
    /// `rotation.rs`, not scanned for secrets: it holds public keys and
    /// signatures) and has the writer sign with `new` from the next tree
    /// on: the group holding the record ends with it and is signed by the
    /// current key; the writer switches before it publishes that group.
    /// Blocks until the group is durable and the switch made.
    pub(crate) fn append_switching_signer(
        &self,
        request: AppendRequest,
        new: Arc<dyn Signer>,
    ) -> Result<AppendOutcome> {
        let checks = Arc::new(Checks {
            config: self.shared.config.clone(),
            scanner: SecretScanner::disabled(),
        });
        let (events, expected) = prepare(request, &checks)?;
        let (reply, receiver) = oneshot::channel();
        let command = Command {
            events,
            expected,
            reply,
            switch_signer: Some(new),
        };
        self.sender()?.blocking_send(command).map_err(|_| LedgerError::Closed)?;
        receiver.blocking_recv().map_err(|_| LedgerError::Closed)?
    }

    /// Saves the latest checkpoint to `<dir>/checkpoint` (atomically).
    pub(crate) fn save_checkpoint(&self) -> Result<()> {
        let _saving = match self.saving.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        save_checkpoint(&self.shared.dir, &self.checkpoint())
    }

    /// Runs every check that needs no ledger state on a batch: field rules
    /// and limits, the secret scan, producer signatures. Pure CPU work on
    /// the calling thread; [`Ledger::submit`] and [`Ledger::append`] call
    /// it, and a server may call it on a blocking thread for a large batch
    /// and then hand the result to [`Ledger::submit_checked`].
    pub fn check(&self, request: AppendRequest) -> Result<CheckedBatch> {
        let (events, expected) = prepare(request, &self.checks)?;
        let resolver = match self.producer_keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        verify_signatures(&events, resolver.as_deref())?;
        let (reply, _) = oneshot::channel();
        Ok(CheckedBatch {
            command: Command {
                events,
                expected,
                reply,
                switch_signer: None,
            },
            ledger_id: self.shared.identity.ledger_id,
        })
    }

    fn sender(&self) -> Result<mpsc::Sender<Command>> {
        let guard = self.commands.read().map_err(|_| LedgerError::Closed)?;
        guard.clone().ok_or(LedgerError::Closed)
    }

    /// Appends an atomic batch and blocks until it is durable (or failed).
    /// Do not call from inside an async runtime; use [`Ledger::append_async`].
    pub fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        let mut command = self.check(request)?.command;
        let (reply, receiver) = oneshot::channel();
        command.reply = reply;
        self.sender()?.blocking_send(command).map_err(|_| LedgerError::Closed)?;
        receiver.blocking_recv().map_err(|_| LedgerError::Closed)?
    }

    /// [`Ledger::append`] for async callers: waits for queue space (that is
    /// the back-pressure) and for the group commit without blocking a thread.
    /// Validation and producer-signature checks run on the calling task.
    pub async fn append_async(&self, request: AppendRequest) -> Result<AppendOutcome> {
        self.submit(request).await?.await
    }

    /// Validates a batch and queues it for the writer, waiting only for queue
    /// space; the returned [`PendingAppend`] resolves once the group commit
    /// holding the batch is durable (or failed). Batches submitted one after
    /// another are committed in that order, which lets a stream of batches
    /// be pipelined into group commit without reordering its receipts.
    pub async fn submit(&self, request: AppendRequest) -> Result<PendingAppend> {
        let batch = self.check(request)?;
        self.submit_checked(batch).await
    }

    /// Queues a batch that passed [`Ledger::check`], as [`Ledger::submit`]
    /// does after checking.
    pub async fn submit_checked(&self, batch: CheckedBatch) -> Result<PendingAppend> {
        if batch.ledger_id != self.shared.identity.ledger_id {
            return Err(LedgerError::InvalidRequest {
                field: "events",
                reason: "the batch was checked by another ledger".to_string(),
            });
        }
        let mut command = batch.command;
        let (reply, receiver) = oneshot::channel();
        command.reply = reply;
        self.sender()?.send(command).await.map_err(|_| LedgerError::Closed)?;
        Ok(PendingAppend(receiver))
    }

    /// Committed (durable) records.
    pub fn len(&self) -> u64 {
        self.shared.committed()
    }

    /// True when the log holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks until more than `len` records are committed, or `timeout`
    /// passes; returns the committed length. For threads that follow the
    /// log without an async runtime (projections).
    pub fn wait_len_beyond(&self, len: u64, timeout: std::time::Duration) -> u64 {
        let deadline = std::time::Instant::now() + timeout;
        let (lock, changed) = &self.shared.len_changed;
        let mut guard = match lock.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        loop {
            let committed = self.len();
            let now = std::time::Instant::now();
            if committed > len || now >= deadline {
                return committed;
            }
            guard = match changed.wait_timeout(guard, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Watches the committed length: changes after every group commit.
    pub fn watch_len(&self) -> watch::Receiver<u64> {
        self.shared.len_tx.subscribe()
    }

    /// The ledger's identity.
    pub fn identity(&self) -> &LedgerIdentity {
        &self.shared.identity
    }

    /// The key auditors verify checkpoints with (the new one as soon as a
    /// key rotation has switched).
    pub fn verifier_key(&self) -> Result<VerifierKey> {
        self.shared.signer().verifier_key()
    }

    /// The record at `seq`.
    pub fn read(&self, seq: u64) -> Result<Record> {
        read_one(&self.shared.log, seq, self.len())
    }

    /// Up to `limit` records from `from`.
    pub fn read_range(&self, from: u64, limit: usize) -> Result<Vec<Record>> {
        read_range(&self.shared.log, from, limit, self.len())
    }

    /// Reads records `from..end` (`end` capped at the committed length) in
    /// order, handing them to `each_chunk` at most `chunk_records` at a
    /// time, until it returns `false`. The sequential reader projections
    /// fold from: one pass per segment, and record hashes taken from the
    /// verified chain instead of recomputed (see `reader::scan_chunks`).
    pub fn scan_chunks(
        &self,
        from: u64,
        end: u64,
        chunk_records: usize,
        each_chunk: &mut dyn FnMut(Vec<Record>) -> bool,
    ) -> Result<()> {
        let end = end.min(self.len());
        scan_chunks(&self.shared.log, from, end, chunk_records, each_chunk)
    }

    /// [`Ledger::scan_chunks`] decoding into the chunks `spare` hands back
    /// rather than into new ones (see `reader::scan_chunks_reusing`).
    pub(crate) fn scan_chunks_reusing(
        &self,
        from: u64,
        end: u64,
        chunk_records: usize,
        spare: &mut dyn FnMut() -> Option<Vec<Record>>,
        each_chunk: &mut dyn FnMut(Vec<Record>) -> bool,
    ) -> Result<()> {
        let end = end.min(self.len());
        scan_chunks_reusing(&self.shared.log, from, end, chunk_records, spare, each_chunk)
    }

    /// The record of an event id, if any.
    pub fn get_by_id(&self, id: Uuid) -> Result<Option<Record>> {
        let committed = self.len();
        let seq = self.shared.ids.reader().get(id.as_bytes())?;
        match seq {
            Some(seq) if seq < committed => Ok(Some(self.read(seq)?)),
            _ => Ok(None),
        }
    }

    /// What the event-id index holds in memory and in run files now.
    pub fn id_index_stats(&self) -> IdIndexStats {
        self.shared.ids.stats()
    }

    /// Up to `limit` records of `stream` from `from_version`.
    pub fn read_stream(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<Record>> {
        let committed = self.len();
        self.shared.index.wait_indexed(committed)?;
        let entries = self.shared.store.stream_range(stream, from_version, limit)?;
        entries
            .into_iter()
            .filter(|(_, seq)| *seq < committed)
            .map(|(_, seq)| self.read(seq))
            .collect()
    }

    /// The last version of a stream (`None` when it has no events).
    pub fn stream_head(&self, stream: &str) -> Result<Option<u64>> {
        self.shared.index.wait_indexed(self.len())?;
        Ok(self.shared.store.stream_head(stream)?.map(|(version, _)| version))
    }

    /// Blocks until the index store reflects every committed record.
    pub fn wait_indexed(&self) -> Result<()> {
        self.shared.index.wait_indexed(self.len())
    }

    /// The latest signed checkpoint (cut at every group commit).
    pub fn checkpoint(&self) -> Arc<SignedCheckpoint> {
        self.shared.latest_checkpoint()
    }

    fn check_size(&self, what: &'static str, size: u64) -> Result<u64> {
        let len = self.len();
        if size > len {
            return Err(LedgerError::OutOfRange {
                what,
                requested: size,
                len,
            });
        }
        self.shared.index.wait_indexed(size)?;
        Ok(len)
    }

    /// Merkle root of the first `size` records, from stored nodes.
    pub fn root_at(&self, size: u64) -> Result<Hash> {
        self.check_size("tree size", size)?;
        subtree_root(
            &StoreNodes::new(self.shared.store.as_ref(), self.shared.identity.tree_hash),
            self.shared.identity.tree_hash,
            0,
            size,
        )
    }

    /// A signed checkpoint of the first `size` records: byte-identical to
    /// the one cut when the log had that size, if the key is the same.
    pub fn checkpoint_at(&self, size: u64) -> Result<SignedCheckpoint> {
        let root = self.root_at(size)?;
        let identity = &self.shared.identity;
        let (chain_head, recorded_at_ns) = match size.checked_sub(1) {
            None => ([0; 32], identity.created_at_ns),
            Some(last) => {
                let record = self.read(last)?;
                (record.record_hash, record.header.recorded_at_ns)
            }
        };
        // The key is taken after the size was checked against the committed
        // length: a size past a rotation's tree is only committed once the
        // writer has switched to the new key.
        sign_checkpoint(
            self.shared.signer().as_ref(),
            &identity.origin,
            identity.tree_hash,
            size,
            root,
            chain_head,
            recorded_at_ns,
        )
    }

    /// Inclusion proof of record `seq` in the tree of `size` records.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>> {
        self.check_size("tree size", size)?;
        inclusion_proof(
            &StoreNodes::new(self.shared.store.as_ref(), self.shared.identity.tree_hash),
            self.shared.identity.tree_hash,
            seq,
            size,
        )
    }

    /// Consistency proof from the tree of `old_size` to that of `new_size`.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>> {
        self.check_size("tree size", new_size)?;
        consistency_proof(
            &StoreNodes::new(self.shared.store.as_ref(), self.shared.identity.tree_hash),
            self.shared.identity.tree_hash,
            old_size,
            new_size,
        )
    }

    /// Stops accepting appends, lets queued ones finish, waits for the
    /// indexer, and saves the latest checkpoint. Also done on drop.
    pub fn close(&self) -> Result<()> {
        let sender = match self.commands.write() {
            Ok(mut commands) => commands.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if sender.is_none() {
            return Ok(());
        }
        drop(sender);
        let threads = match self.threads.lock() {
            Ok(mut threads) => std::mem::take(&mut *threads),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for thread in threads {
            let _ = thread.join();
        }
        self.shared.ids.close();
        self.save_checkpoint()
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Err(err) = self.close() {
            tracing::warn!(error = %err, "closing the ledger");
        }
    }
}

/// Takes the directory lock, so two processes never append to one log.
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LedgerError::io(format!("opening {}", path.display()), e))?;
    // A lock can outlive its holder for a moment: a child process forked
    // (to be exec'd) while the lock was held shares the open file
    // description until its exec closes it. So a held lock is retried
    // briefly before it is reported as another process's.
    let mut attempts = 0;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if attempts < LOCK_RETRIES => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(_) => {
                return Err(LedgerError::BadLedgerDir {
                    path: dir.to_path_buf(),
                    reason: "another process has this ledger open (LOCK is held)".to_string(),
                });
            }
        }
    }
}

/// Retries of a held lock, 25 ms apart (half a second in all).
const LOCK_RETRIES: u32 = 20;

/// The store's identity: the ledger's, plus the store layout, so a store
/// written with another key layout is rebuilt rather than misread.
fn store_identity(identity: &LedgerIdentity) -> Vec<u8> {
    format!("{} {} {STORE_LAYOUT}", identity.ledger_id, identity.tree_hash).into_bytes()
}

/// Bumped whenever the sled key layout changes (`store/sled_store.rs`).
/// Layout 2: no id keys, stream entries packed 64 to a value. Layout 3:
/// no tree nodes of levels 1..=5 (`store::DERIVED_LEVELS`).
const STORE_LAYOUT: &str = "layout-3";

fn load_or_create_identity(dir: &Path, config: &LedgerConfig) -> Result<LedgerIdentity> {
    let path = dir.join("ledger.json");
    let bad = |reason: String| LedgerError::BadLedgerDir {
        path: path.clone(),
        reason,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
            let field = |name: &str| value.get(name).ok_or_else(|| bad(format!("missing field {name}")));
            if field("format")?.as_str() != Some(IDENTITY_FORMAT) {
                return Err(bad(format!("format is not {IDENTITY_FORMAT}")));
            }
            let ledger_id = field("ledger_id")?
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| bad("ledger_id is not a UUID".to_string()))?;
            let origin = field("origin")?
                .as_str()
                .filter(|s| !s.is_empty() && !s.contains('\n'))
                .ok_or_else(|| bad("origin is not a one-line string".to_string()))?
                .to_string();
            let tree_hash = field("tree_hash")?
                .as_str()
                .and_then(HashAlg::from_name)
                .ok_or_else(|| bad("tree_hash is not blake3 or sha256".to_string()))?;
            let created_at_ns = field("created_at_ns")?
                .as_i64()
                .ok_or_else(|| bad("created_at_ns is not an integer".to_string()))?;
            Ok(LedgerIdentity {
                ledger_id,
                origin,
                tree_hash,
                created_at_ns,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let log_dir = dir.join("log");
            if log_dir.exists()
                && std::fs::read_dir(&log_dir)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true)
            {
                return Err(bad("missing, but the log directory has segments".to_string()));
            }
            let probe = ledger_verify::note::Checkpoint {
                origin: config.origin.clone(),
                size: 0,
                root: [0; 32],
                extensions: Vec::new(),
            };
            if config.origin.contains(' ') || probe.validate().is_err() {
                return Err(LedgerError::InvalidRequest {
                    field: "origin",
                    reason: format!(
                        "{:?} is not a valid checkpoint origin: non-empty, one line, no spaces or control characters",
                        config.origin
                    ),
                });
            }
            let identity = LedgerIdentity {
                ledger_id: Uuid::new_v4(),
                origin: config.origin.clone(),
                tree_hash: config.tree_hash,
                created_at_ns: timestamp_ns(chrono::Utc::now()),
            };
            let json = serde_json::json!({
                "format": IDENTITY_FORMAT,
                "ledger_id": identity.ledger_id.to_string(),
                "origin": identity.origin,
                "tree_hash": identity.tree_hash.name(),
                "created_at_ns": identity.created_at_ns,
            });
            write_atomically(dir, "ledger.json", format!("{json:#}\n").as_bytes())?;
            Ok(identity)
        }
        Err(e) => Err(LedgerError::io(format!("reading {}", path.display()), e)),
    }
}

/// Write to a temp file, fsync, rename over `name`, fsync the directory.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let ctx = || format!("writing {}", target.display());
    let mut file = File::create(&tmp).map_err(|e| LedgerError::io(ctx(), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| LedgerError::io(ctx(), e))?;
    std::fs::rename(&tmp, &target).map_err(|e| LedgerError::io(ctx(), e))?;
    sync_dir(dir)
}

fn save_checkpoint(dir: &Path, checkpoint: &SignedCheckpoint) -> Result<()> {
    write_atomically(dir, "checkpoint", checkpoint.note.as_bytes())
}

/// Scans the log, rebuilding the frontier and the id index from every
/// record and bringing the store up to date with the records it has not
/// seen. A store that disagrees with the log on the last leaf it indexed is
/// wiped and rebuilt in a second pass: the log is the truth.
fn recover(
    log_dir: &Path,
    identity: &LedgerIdentity,
    store: &dyn Store,
    signed_len: u64,
    new_ids: impl Fn() -> Result<IdIndex>,
) -> Result<(ScanOutcome, Frontier, IdIndex)> {
    let mut disagrees = false;
    match recover_pass(log_dir, identity, store, signed_len, new_ids()?, &mut disagrees) {
        Err(_) if disagrees => {
            tracing::warn!("index store disagrees with the log; rebuilding it");
            store.clear()?;
            store.set_identity(&store_identity(identity))?;
            recover_pass(log_dir, identity, store, signed_len, new_ids()?, &mut disagrees)
        }
        other => other,
    }
}

fn recover_pass(
    log_dir: &Path,
    identity: &LedgerIdentity,
    store: &dyn Store,
    signed_len: u64,
    ids: IdIndex,
    disagrees: &mut bool,
) -> Result<(ScanOutcome, Frontier, IdIndex)> {
    const APPLY_EVERY: usize = 16_384;
    let indexed_len = store.log_len()?;
    let mut frontier = Frontier::new(identity.tree_hash);
    let mut pending = IndexBatch::default();
    let mut on_batch = |records: &[crate::segment::recovery::ScannedRecord]| -> Result<()> {
        for record in records {
            if let Some(first) = ids.insert_first(record.id, record.seq) {
                // The writer never does this; the first record is the one
                // whose receipt was given, so it stays the id's record.
                tracing::warn!(event_id = %Uuid::from_bytes(record.id), first, again = record.seq, "event id recorded twice in the log; keeping the first");
            }
            let leaf = identity.tree_hash.leaf_hash(&record.record_hash);
            let nodes = frontier.push(leaf)?;
            if record.seq + 1 == indexed_len && store.node(0, record.seq)? != Some(leaf) {
                *disagrees = true;
                return Err(LedgerError::Store(format!(
                    "index store disagrees with the log at seq {}",
                    record.seq
                )));
            }
            if record.seq < indexed_len {
                continue;
            }
            pending.events.push(IndexedEvent {
                stream: record.stream.clone(),
                stream_version: record.stream_version,
                seq: record.seq,
            });
            pending.nodes.extend(
                nodes
                    .into_iter()
                    .map(|(level, index, hash)| TreeNode { level, index, hash }),
            );
            pending.log_len_after = record.seq + 1;
        }
        if pending.events.len() >= APPLY_EVERY {
            store.apply(&std::mem::take(&mut pending))?;
        }
        Ok(())
    };
    // The store only ever sees records after their fsync, and a checkpoint
    // is only signed over fsynced records: the larger of the two is the floor
    // below which a torn tail may not cut (scan_log refuses instead).
    let min_len = indexed_len.max(signed_len);
    let scan = scan_log(log_dir, identity.tree_hash, min_len, &mut on_batch)?;
    if !pending.events.is_empty() {
        store.apply(&pending)?;
    }
    Ok((scan, frontier, ids))
}

/// The checkpoint saved by an earlier run, if it is signed by our key for
/// this origin (anything else is ignored with a warning: it proves nothing).
fn load_saved_checkpoint(
    dir: &Path,
    identity: &LedgerIdentity,
    signer: &dyn Signer,
) -> Result<Option<ledger_verify::note::Checkpoint>> {
    let path = dir.join("checkpoint");
    let Ok(note) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    match open_checkpoint(&note, &[signer.verifier_key()?]) {
        Ok(checkpoint) if checkpoint.origin == identity.origin => Ok(Some(checkpoint)),
        _ => {
            tracing::warn!(path = %path.display(), "saved checkpoint is not signed by the current key for this origin; not checked");
            Ok(None)
        }
    }
}

/// The log must still contain the tree of the saved checkpoint: otherwise
/// records were rewritten or removed since it was signed.
fn check_saved_checkpoint(
    checkpoint: &ledger_verify::note::Checkpoint,
    identity: &LedgerIdentity,
    log_dir: &Path,
    scan: &ScanOutcome,
    store: &dyn Store,
) -> Result<()> {
    let corrupt = |reason: String| LedgerError::Corrupt {
        segment: log_dir.to_path_buf(),
        offset: 0,
        seq: Some(checkpoint.size.saturating_sub(1)),
        reason,
    };
    if checkpoint.size > scan.n_records {
        return Err(corrupt(format!(
            "a signed checkpoint covers {} records but the log holds {}",
            checkpoint.size, scan.n_records
        )));
    }
    let root = subtree_root(
        &StoreNodes::new(store, identity.tree_hash),
        identity.tree_hash,
        0,
        checkpoint.size,
    )?;
    if root != checkpoint.root {
        return Err(corrupt(format!(
            "the log's root at size {} differs from the signed checkpoint: records were rewritten",
            checkpoint.size
        )));
    }
    Ok(())
}
