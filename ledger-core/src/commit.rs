//! The group-commit writer: one thread owns the tail segment. It drains every
//! queued append request into one group, checks each against ledger state
//! (idempotency, expected version), assigns seqs and hashes, writes the whole
//! group with one `write` and one `fdatasync`, and only then acknowledges.
//! The group's checkpoint is signed meanwhile by an idle helper thread
//! (`helpers.rs`) when there is one, and used only once the fsync succeeded.
//!
//! A key rotation (`rotation.rs`) is the one request that ends its group:
//! the writer signs that group's tree with the old key, then switches to the
//! new key before publishing it, so every later tree is the new key's.
//!
//! The append contract: an append returns a durably assigned sequence number,
//! or an error — never both, never neither. After a failed write or fsync the
//! writer is poisoned: every later append fails until the ledger is reopened
//! and recovery has decided what is on disk.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

use ledger_verify::Hash;
use ledger_verify::merkle::Frontier;
use ledger_verify::record::{RecordHeader, encode_record_prefix, record_hash};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::checkpoint::{SignedCheckpoint, sign_checkpoint};
use crate::error::{LedgerError, Result};
use crate::event::{ExpectedVersion, PreparedEvent, Receipt};
use crate::ids::{IdMap, IdReader, KeyedHash};
use crate::ledger::Shared;
use crate::reader::read_one;
use crate::segment::file::{SegmentHeader, create_segment};
use crate::segment::frame::{FLAG_BATCH_END, begin_frame, end_canonical, finish_frame};
use crate::segment::index::SegmentInfo;
use crate::segment::prealloc::Prealloc;
use crate::signer::Signer;
use crate::store::{IndexBatch, IndexedEvent, TreeNode};

/// What an append returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// One receipt per event, in order.
    pub receipts: Vec<Receipt>,
    /// True when every event was already in the log (an idempotent retry):
    /// the receipts are the originals and nothing was written.
    pub deduplicated: bool,
    /// A signed checkpoint that covers every receipt.
    pub checkpoint: Arc<SignedCheckpoint>,
}

/// A request queued for the writer.
#[derive(Debug)]
pub(crate) struct Command {
    pub(crate) events: Vec<PreparedEvent>,
    pub(crate) expected: ExpectedVersion,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome>>,
    /// Set on the ledger's own key rotation record (`rotation.rs`): the
    /// request ends its group, and once the group is durable and signed
    /// by the current key, this key signs every later tree.
    pub(crate) switch_signer: Option<Arc<dyn Signer>>,
}

/// The writer's own state: only its thread touches it.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
    pub(crate) next_seq: u64,
    pub(crate) last_hash: Hash,
    pub(crate) last_recorded_at_ns: i64,
    pub(crate) frontier: Frontier,
    pub(crate) stream_heads: HashMap<String, u64, KeyedHash>,
    pub(crate) index_tx: Sender<IndexBatch>,
    pub(crate) poisoned: Option<String>,
    pub(crate) scratch: Scratch,
    /// The key signing the next group (also in `Shared`, for readers; only
    /// this thread changes either).
    pub(crate) signer: Arc<dyn Signer>,
    /// Synced zeros ahead of `len` in the tail segment, so that fsyncs do
    /// not also commit a new file size.
    pub(crate) prealloc: Prealloc,
}

/// A record staged in the current group.
struct Staged {
    header: RecordHeader,
    record_hash: Hash,
    offset_in_group: u64,
    end_in_group: u64,
}

/// Buffers the writer reuses from group to group, so that a group does not
/// start from empty allocations: a 1024-event group's frames are ~540 KB,
/// and growing them afresh each time showed up as `realloc` in profiles.
/// They keep the capacity of the largest group seen (at most
/// `max_group_events` records).
#[derive(Default)]
pub(crate) struct Scratch {
    /// The group's frames, written with one `write`.
    buf: Vec<u8>,
    /// The group's records, in seq order.
    staged: Vec<Staged>,
    /// Event id → index in `staged`, for an id repeated within the group.
    group_ids: IdMap<usize>,
    /// The group's payloads, copied into `buf`.
    payloads: Vec<Vec<u8>>,
}

/// What a group's checkpoint signs: the tree after the group.
#[derive(Clone, Copy)]
struct Tree {
    size: u64,
    root: Hash,
    chain_head: Hash,
    recorded_at_ns: i64,
}

/// A group's Merkle work: its leaves pushed onto the tree before it. It
/// depends only on the record hashes, not on the frames, so it runs (with
/// the signature of its result) on an idle helper while the writer writes
/// and fsyncs: ~0.4 µs per record off the writer's path.
struct TreeGrowth {
    frontier: Frontier,
    record_hashes: Vec<Hash>,
    chain_head: Hash,
    recorded_at_ns: i64,
}

/// The grown tree: the frontier after the group, the nodes it completed
/// (for the index store) and its signed checkpoint.
struct Grown {
    frontier: Frontier,
    nodes: Vec<TreeNode>,
    checkpoint: SignedCheckpoint,
}

impl TreeGrowth {
    /// Pushes every leaf; returns the grown frontier, the completed nodes
    /// and what the checkpoint signs.
    fn grow(self) -> Result<(Frontier, Vec<TreeNode>, Tree)> {
        let TreeGrowth {
            mut frontier,
            record_hashes,
            chain_head,
            recorded_at_ns,
        } = self;
        let alg = frontier.alg();
        // A group of n records completes just under 2n tree nodes.
        let mut nodes = Vec::with_capacity(2 * record_hashes.len() + 64);
        for hash in &record_hashes {
            for (level, index, hash) in frontier.push(alg.leaf_hash(hash))? {
                nodes.push(TreeNode { level, index, hash });
            }
        }
        let tree = Tree {
            size: frontier.size(),
            root: frontier.root(),
            chain_head,
            recorded_at_ns,
        };
        Ok((frontier, nodes, tree))
    }

    /// [`TreeGrowth::grow`], then the checkpoint signed by `signer`.
    fn grow_and_sign(self, shared: &Shared, signer: &dyn Signer) -> Result<Grown> {
        let (frontier, nodes, tree) = self.grow()?;
        Ok(Grown {
            frontier,
            nodes,
            checkpoint: tree.sign(shared, signer)?,
        })
    }
}

impl Tree {
    fn sign(self, shared: &Shared, signer: &dyn Signer) -> Result<SignedCheckpoint> {
        sign_checkpoint(
            signer,
            &shared.identity.origin,
            shared.identity.tree_hash,
            self.size,
            self.root,
            self.chain_head,
            self.recorded_at_ns,
        )
    }
}

/// A request that passed the state checks, waiting for the fsync.
enum Pending {
    New { first: usize, count: usize },
    Duplicate(Vec<Receipt>),
}

impl Writer {
    /// The writer thread's loop: until every sender is gone.
    pub(crate) fn run(mut self, commands: &mut mpsc::Receiver<Command>) {
        let max_group = self.shared.config.max_group_events;
        while let Some(first) = commands.blocking_recv() {
            let mut n_events = first.events.len();
            // A key rotation record ends its group, so that the tree it
            // first appears in (size seq + 1) is the last one the old key
            // signs (`docs/FORMAT.md` §6.1).
            let mut ends_group = first.switch_signer.is_some();
            let mut group = vec![first];
            while n_events < max_group && !ends_group {
                let Ok(next) = commands.try_recv() else { break };
                n_events += next.events.len();
                ends_group = next.switch_signer.is_some();
                group.push(next);
            }
            let max_unindexed = self.shared.config.max_unindexed_events;
            if let Err(err) = self.shared.index.wait_below(max_unindexed, self.next_seq) {
                self.poisoned.get_or_insert_with(|| err.to_string());
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            self.commit_group(group, n_events, &mut scratch);
            self.scratch = scratch;
        }
        // Stopping: the tail segment ends at its last record again.
        if let Err(err) = self.prealloc.finish(&self.file, self.len) {
            tracing::warn!(error = %err, segment = %self.path.display(), "cutting the preallocated zeros off the tail segment failed; the next open truncates them");
        }
    }

    fn commit_group(&mut self, group: Vec<Command>, n_events: usize, scratch: &mut Scratch) {
        if let Some(reason) = &self.poisoned {
            for command in group {
                let _ = command.reply.send(Err(LedgerError::Poisoned(reason.clone())));
            }
            return;
        }
        let shared = Arc::clone(&self.shared);
        let group_start_seq = self.next_seq;
        let now_ns = crate::event::timestamp_ns(chrono::Utc::now());
        let recorded_at_ns = now_ns.max(self.last_recorded_at_ns);
        scratch.buf.clear();
        scratch.staged.clear();
        scratch.group_ids.clear();
        scratch.payloads.clear();
        // A frame is ~270 bytes of frame and canonical header plus the
        // payload; 640 covers the benchmark's 256-byte payloads in one go.
        scratch.buf.reserve(n_events * 640);
        scratch.staged.reserve(n_events);
        if group.len() > 1 {
            scratch.group_ids.reserve(n_events);
        }
        let mut waiting: Vec<(oneshot::Sender<Result<AppendOutcome>>, Pending)> = Vec::with_capacity(group.len());
        // The key taking over after this group: only ever the last request's
        // (see `run`), and only if its record was staged.
        let mut switch_to: Option<Arc<dyn Signer>> = None;
        {
            // One read lock for the whole group: only this thread changes
            // the ids, and it does so below, after the fsync.
            let ids = shared.ids.reader();
            let n_requests = group.len();
            for (i, command) in group.into_iter().enumerate() {
                let Command {
                    events,
                    expected,
                    reply,
                    switch_signer,
                } = command;
                let last = i + 1 == n_requests;
                let result = self.stage(events, expected, recorded_at_ns, &ids, scratch, last);
                match result {
                    Ok(pending) => {
                        if let (Pending::New { .. }, Some(new)) = (&pending, switch_signer) {
                            switch_to = Some(new);
                        }
                        waiting.push((reply, pending));
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
        }
        if scratch.staged.is_empty() {
            let checkpoint = shared.latest_checkpoint();
            for (reply, pending) in waiting {
                if let Pending::Duplicate(receipts) = pending {
                    let _ = reply.send(Ok(AppendOutcome {
                        receipts,
                        deduplicated: true,
                        checkpoint: Arc::clone(&checkpoint),
                    }));
                }
            }
            return;
        }
        // The tree is grown and its checkpoint signed by an idle helper
        // while this thread writes and fsyncs, if one is idle; the result is
        // used only once the group is durable, and dropped with it if the
        // write or the fsync fails. (A rotation's group does it here: it
        // signs with both keys.)
        let growing = match switch_to {
            None => self.grow_on_helper(self.growth(&scratch.staged, recorded_at_ns)),
            Some(_) => None,
        };
        let committed = self.write_and_sync(&scratch.buf).and_then(|base_offset| {
            let (grown, head) = match growing {
                Some(grown) => (
                    grown
                        .recv()
                        .map_err(|_| LedgerError::Signer("the signing helper stopped".to_string()))??,
                    None,
                ),
                None => {
                    let (frontier, nodes, tree) = self.growth(&scratch.staged, recorded_at_ns).grow()?;
                    let grown = Grown {
                        frontier,
                        nodes,
                        checkpoint: tree.sign(&shared, self.signer.as_ref())?,
                    };
                    // A rotation: the acknowledgements carry the old key's
                    // signature of this tree (the last it makes); the head
                    // is published signed by the new key, which signs
                    // everything from here on.
                    let head = match &switch_to {
                        Some(new) => Some(tree.sign(&shared, new.as_ref())?),
                        None => None,
                    };
                    (grown, head)
                }
            };
            Ok((base_offset, grown, head))
        });
        let (base_offset, grown, head) = match committed {
            Ok(ok) => ok,
            Err(err) => {
                let reason = err.to_string();
                tracing::error!(error = %reason, first_seq = group_start_seq, "group commit failed; poisoning the writer");
                self.poisoned = Some(reason.clone());
                for (reply, _) in waiting {
                    let _ = reply.send(Err(LedgerError::Poisoned(reason.clone())));
                }
                return;
            }
        };
        let Grown {
            frontier,
            nodes,
            checkpoint,
        } = grown;
        // Durable: publish the new state, then acknowledge.
        let staged = &mut scratch.staged;
        self.frontier = frontier;
        self.next_seq = group_start_seq + staged.len() as u64;
        self.last_hash = checkpoint.chain_head;
        self.last_recorded_at_ns = recorded_at_ns;
        shared
            .ids
            .insert_all(staged.iter().map(|record| (record.header.event.id, record.header.seq)));
        if let Ok(mut log) = shared.log.write()
            && let Some(segment) = log.segments.last_mut()
        {
            for record in staged.iter() {
                segment.push(base_offset + record.offset_in_group, base_offset + record.end_in_group);
            }
        }
        let checkpoint = Arc::new(checkpoint);
        let head = match (head, switch_to) {
            (Some(head), Some(new)) => {
                // Before the publish: whoever sees a tree beyond this group
                // also sees the new key (`Ledger::checkpoint_at`).
                tracing::info!(
                    seq = self.next_seq - 1,
                    key_name = new.key_name(),
                    "key rotation: signing with the new key from here on"
                );
                self.signer = Arc::clone(&new);
                shared.set_signer(new);
                Arc::new(head)
            }
            _ => Arc::clone(&checkpoint),
        };
        shared.publish(self.next_seq, head);
        for (reply, pending) in waiting {
            let outcome = match pending {
                Pending::New { first, count } => AppendOutcome {
                    receipts: staged[first..first + count].iter().map(receipt).collect(),
                    deduplicated: false,
                    checkpoint: Arc::clone(&checkpoint),
                },
                Pending::Duplicate(receipts) => AppendOutcome {
                    receipts,
                    deduplicated: true,
                    checkpoint: Arc::clone(&checkpoint),
                },
            };
            let _ = reply.send(Ok(outcome));
        }
        // After the acknowledgements, so that a caller already prepares its
        // next request while this thread hands the group to the indexer and
        // frees its records and payloads. The stream names move to the
        // indexer; nothing is cloned per record.
        scratch.payloads.clear();
        let index_batch = IndexBatch {
            log_len_after: self.next_seq,
            events: staged
                .drain(..)
                .map(|record| IndexedEvent {
                    stream: record.header.event.stream,
                    stream_version: record.header.stream_version,
                    seq: record.header.seq,
                })
                .collect(),
            nodes,
        };
        if self.index_tx.send(index_batch).is_err() {
            self.poisoned = Some("the indexer stopped".to_string());
        }
    }

    /// The Merkle work of the staged group.
    fn growth(&self, staged: &[Staged], recorded_at_ns: i64) -> TreeGrowth {
        TreeGrowth {
            frontier: self.frontier.clone(),
            record_hashes: staged.iter().map(|staged| staged.record_hash).collect(),
            chain_head: staged.last().map_or(self.last_hash, |s| s.record_hash),
            recorded_at_ns,
        }
    }

    /// Offers the growth of the tree and its signature to an idle
    /// helper; `None` when none is idle (the writer does it itself).
    fn grow_on_helper(&self, growth: TreeGrowth) -> Option<Receiver<Result<Grown>>> {
        let (done, grown) = std::sync::mpsc::sync_channel(1);
        let shared = Arc::clone(&self.shared);
        let signer = Arc::clone(&self.signer);
        let job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                growth.grow_and_sign(&shared, signer.as_ref())
            }))
            .unwrap_or_else(|_| Err(LedgerError::Signer("growing or signing the tree panicked".to_string())));
            let _ = done.send(result);
        });
        crate::helpers::offer(job).ok().map(|()| grown)
    }

    /// Checks one request against ledger state and stages its records.
    /// On error nothing of the request is staged.
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &mut self,
        events: Vec<PreparedEvent>,
        expected: ExpectedVersion,
        recorded_at_ns: i64,
        ids: &IdReader<'_>,
        scratch: &mut Scratch,
        last_in_group: bool,
    ) -> Result<Pending> {
        // Idempotency: which ids are already in the log (or this group)?
        // Two in-memory lookups per event; only a hit reads the log.
        let mut n_known = 0;
        for event in &events {
            let id = &event.header.id;
            if scratch.group_ids.get(id).is_some() || ids.get(id)?.is_some() {
                n_known += 1;
            }
        }
        if n_known > 0 {
            return self.duplicates(&events, n_known, ids, scratch).map(Pending::Duplicate);
        }
        // Resolve every stream head and assign every stream version first:
        // after this, staging cannot fail, so a request is never half-staged.
        let mut versions: Vec<u64> = Vec::with_capacity(events.len());
        {
            let mut heads: HashMap<&str, Option<u64>, KeyedHash> = HashMap::default();
            for event in &events {
                let stream = event.header.stream.as_str();
                if !heads.contains_key(stream) {
                    heads.insert(stream, self.stream_head(stream)?);
                }
            }
            if expected != ExpectedVersion::Any {
                let stream = &events[0].header.stream;
                let actual = heads.get(stream.as_str()).copied().flatten();
                let ok = match expected {
                    ExpectedVersion::Any => true,
                    ExpectedVersion::NoStream => actual.is_none(),
                    ExpectedVersion::Exact(v) => actual == Some(v),
                };
                if !ok {
                    return Err(LedgerError::WrongExpectedVersion {
                        stream: stream.clone(),
                        expected,
                        actual,
                    });
                }
            }
            for event in &events {
                let head = heads.get_mut(event.header.stream.as_str());
                let version = match head {
                    Some(head) => {
                        let version = head.map_or(0, |v| v + 1);
                        *head = Some(version);
                        version
                    }
                    None => 0,
                };
                versions.push(version);
            }
            for (stream, head) in heads {
                let Some(version) = head else { continue };
                match self.stream_heads.get_mut(stream) {
                    Some(cached) => *cached = version,
                    None => {
                        self.stream_heads.insert(stream.to_string(), version);
                    }
                }
            }
        }
        // Stage: from here on nothing can fail for this request.
        let first = scratch.staged.len();
        let count = events.len();
        for (i, (event, stream_version)) in events.into_iter().zip(versions).enumerate() {
            let seq = self.next_seq + scratch.staged.len() as u64;
            let prev_hash = scratch.staged.last().map_or(self.last_hash, |s| s.record_hash);
            let PreparedEvent { header: event, payload } = event;
            // The canonical bytes are encoded in the frame itself (what
            // `RecordHeader::encode` would return, without a `Vec` per record).
            let flags = if i + 1 == count { FLAG_BATCH_END } else { 0 };
            let start = begin_frame(&mut scratch.buf, flags);
            let canonical_at = scratch.buf.len();
            encode_record_prefix(&mut scratch.buf, seq, stream_version, recorded_at_ns, &prev_hash);
            event.encode_record_tail(&mut scratch.buf);
            end_canonical(&mut scratch.buf, start);
            let hash = record_hash(&scratch.buf[canonical_at..]);
            scratch.buf.extend_from_slice(&payload);
            finish_frame(&mut scratch.buf, start);
            let offset_in_group = start as u64;
            let header = RecordHeader {
                seq,
                stream_version,
                recorded_at_ns,
                prev_hash,
                event,
            };
            // Freed after the acknowledgements, off the caller's path.
            scratch.payloads.push(payload);
            // Only a later request of the group looks its ids up here.
            if !last_in_group {
                scratch.group_ids.insert(header.event.id, scratch.staged.len());
            }
            scratch.staged.push(Staged {
                header,
                record_hash: hash,
                offset_in_group,
                end_in_group: scratch.buf.len() as u64,
            });
        }
        Ok(Pending::New { first, count })
    }

    /// The receipts of a request some of whose ids are already known
    /// (`n_known` of them): the original receipts if it is an exact retry,
    /// else `IdConflict` or `PartialDuplicate` for the first known id.
    fn duplicates(
        &self,
        events: &[PreparedEvent],
        n_known: usize,
        ids: &IdReader<'_>,
        scratch: &Scratch,
    ) -> Result<Vec<Receipt>> {
        let mut receipts = Vec::with_capacity(events.len());
        for event in events {
            let Some((seq, header)) = self.find_existing(&event.header.id, ids, scratch)? else {
                continue;
            };
            let event_id = Uuid::from_bytes(event.header.id);
            if header.event != event.header {
                return Err(LedgerError::IdConflict { event_id, seq });
            }
            if n_known < events.len() {
                return Err(LedgerError::PartialDuplicate { event_id, seq });
            }
            receipts.push(Receipt {
                event_id,
                seq,
                stream_version: header.stream_version,
                record_hash: record_hash(&header.encode()),
                recorded_at_ns: header.recorded_at_ns,
                prev_hash: header.prev_hash,
            });
        }
        Ok(receipts)
    }

    /// An id's existing record: in this group, or in the log.
    fn find_existing(
        &self,
        id: &[u8; 16],
        ids: &IdReader<'_>,
        scratch: &Scratch,
    ) -> Result<Option<(u64, RecordHeader)>> {
        if let Some(i) = scratch.group_ids.get(id) {
            let staged = &scratch.staged[i];
            return Ok(Some((staged.header.seq, staged.header.clone())));
        }
        let Some(seq) = ids.get(id)? else { return Ok(None) };
        let record = read_one(&self.shared.log, seq, self.next_seq)?;
        Ok(Some((seq, record.header)))
    }

    /// The last version of a stream. Every stream this writer has appended
    /// to is in its cache; any other was last written before the ledger was
    /// opened, and open brings the store fully up to date, so the store is
    /// authoritative for it without waiting on the indexer.
    fn stream_head(&mut self, stream: &str) -> Result<Option<u64>> {
        if let Some(&version) = self.stream_heads.get(stream) {
            return Ok(Some(version));
        }
        let head = self.shared.store.stream_head(stream)?.map(|(version, _)| version);
        if let Some(version) = head {
            self.stream_heads.insert(stream.to_string(), version);
        }
        Ok(head)
    }

    /// Writes the group at the end of the tail segment (rolling first if the
    /// segment is full) and fsyncs it; returns the group's start offset.
    fn write_and_sync(&mut self, buf: &[u8]) -> Result<u64> {
        if self.len >= self.shared.config.segment_max_bytes {
            self.roll()?;
        }
        let offset = self.len;
        let n = buf.len() as u64;
        let file = &mut self.file;
        let written = self.prealloc.write(offset, n, || file.write_all(buf)).and_then(|()| {
            if self.shared.config.unsafe_no_sync {
                Ok(())
            } else {
                self.file.sync_data()
            }
        });
        if let Err(err) = written {
            // Best effort: take the partial group back off the disk. Recovery
            // would drop it anyway if its batch-end frame is missing.
            let _ = self.prealloc.finish(&self.file, offset);
            let _ = self.file.set_len(offset).and_then(|()| self.file.sync_all());
            return Err(LedgerError::io(format!("appending to {}", self.path.display()), err));
        }
        self.len += n;
        self.prealloc.wrote(self.len, self.shared.config.segment_max_bytes);
        Ok(offset)
    }

    /// Closes the tail segment and starts a new one at `next_seq`.
    fn roll(&mut self) -> Result<()> {
        let header = SegmentHeader {
            tree_hash: self.shared.identity.tree_hash,
            first_seq: self.next_seq,
        };
        // Only the last segment may end in zeros (FORMAT §10.3): cut them
        // off this one, durably, before the next one exists.
        self.prealloc
            .finish(&self.file, self.len)
            .map_err(|e| LedgerError::io(format!("closing {}", self.path.display()), e))?;
        let (file, path) = create_segment(&self.shared.log_dir, header)?;
        let read_handle = File::open(&path).map_err(|e| LedgerError::io(format!("opening {}", path.display()), e))?;
        let len = crate::segment::file::SEGMENT_HEADER_LEN;
        self.shared
            .log
            .write()
            .map_err(|_| LedgerError::Poisoned("log index lock poisoned".to_string()))?
            .segments
            .push(SegmentInfo {
                first_seq: self.next_seq,
                path: path.clone(),
                file: Arc::new(read_handle),
                n_records: 0,
                len_bytes: len,
                sparse: Vec::new(),
            });
        tracing::info!(segment = %path.display(), first_seq = self.next_seq, "started a new segment");
        self.prealloc
            .start(&file, len, self.shared.config.segment_max_bytes)
            .map_err(|e| LedgerError::io(format!("preallocating {}", path.display()), e))?;
        self.file = file;
        self.path = path;
        self.len = len;
        Ok(())
    }
}

fn receipt(staged: &Staged) -> Receipt {
    Receipt {
        event_id: Uuid::from_bytes(staged.header.event.id),
        seq: staged.header.seq,
        stream_version: staged.header.stream_version,
        record_hash: staged.record_hash,
        recorded_at_ns: staged.header.recorded_at_ns,
        prev_hash: staged.header.prev_hash,
    }
}
