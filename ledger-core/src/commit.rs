//! The group-commit writer: one thread owns the tail segment. It drains every
//! queued append request into one group, checks each against ledger state
//! (idempotency, expected version), assigns seqs and hashes, writes the whole
//! group with one `write` and one `fdatasync`, and only then acknowledges.
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
use std::sync::mpsc::Sender;

use ledger_verify::merkle::Frontier;
use ledger_verify::record::{RecordHeader, record_hash};
use ledger_verify::{Hash, HashAlg};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::checkpoint::{SignedCheckpoint, sign_checkpoint};
use crate::error::{LedgerError, Result};
use crate::event::{ExpectedVersion, PreparedEvent, Receipt};
use crate::ledger::Shared;
use crate::reader::read_one;
use crate::segment::file::{SegmentHeader, create_segment};
use crate::segment::frame::{FLAG_BATCH_END, FRAME_HEADER_LEN, encode_frame};
use crate::segment::index::SegmentInfo;
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
    pub(crate) stream_heads: HashMap<String, u64>,
    pub(crate) index_tx: Sender<IndexBatch>,
    pub(crate) poisoned: Option<String>,
}

/// A record staged in the current group.
struct Staged {
    header: RecordHeader,
    record_hash: Hash,
    offset_in_group: u64,
    end_in_group: u64,
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
            let mut group = vec![first];
            while n_events < max_group {
                let Ok(next) = commands.try_recv() else { break };
                n_events += next.events.len();
                group.push(next);
            }
            if let Err(err) = self.shared.index.wait_below(self.shared.config.max_unindexed_events) {
                self.poisoned.get_or_insert_with(|| err.to_string());
            }
            self.commit_group(group);
        }
    }

    fn commit_group(&mut self, group: Vec<Command>) {
        if let Some(reason) = &self.poisoned {
            for command in group {
                let _ = command.reply.send(Err(LedgerError::Poisoned(reason.clone())));
            }
            return;
        }
        let group_start_seq = self.next_seq;
        let now_ns = crate::event::timestamp_ns(chrono::Utc::now());
        let recorded_at_ns = now_ns.max(self.last_recorded_at_ns);
        let mut buf = Vec::with_capacity(group.iter().map(|c| c.events.len() * 640).sum());
        let mut staged: Vec<Staged> = Vec::new();
        let mut group_ids: HashMap<[u8; 16], usize> = HashMap::new();
        let mut nodes: Vec<TreeNode> = Vec::new();
        let mut waiting: Vec<(oneshot::Sender<Result<AppendOutcome>>, Pending)> = Vec::new();
        let mut frontier = self.frontier.clone();
        for command in group {
            let result = self.stage(
                &command,
                recorded_at_ns,
                &mut buf,
                &mut staged,
                &mut group_ids,
                &mut frontier,
                &mut nodes,
            );
            match result {
                Ok(pending) => waiting.push((command.reply, pending)),
                Err(err) => {
                    let _ = command.reply.send(Err(err));
                }
            }
        }
        if staged.is_empty() {
            let checkpoint = self.shared.latest_checkpoint();
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
        let committed = self.write_and_sync(&buf).and_then(|base_offset| {
            let last = staged.last().map_or(self.last_hash, |s| s.record_hash);
            let size = frontier.size();
            let checkpoint = sign_checkpoint(
                self.shared.signer.as_ref(),
                &self.shared.identity.origin,
                self.shared.identity.tree_hash,
                size,
                frontier.root(),
                last,
                recorded_at_ns,
            )?;
            Ok((base_offset, checkpoint))
        });
        let (base_offset, checkpoint) = match committed {
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
        // Durable: publish the new state, then acknowledge.
        self.frontier = frontier;
        self.next_seq = group_start_seq + staged.len() as u64;
        self.last_hash = checkpoint.chain_head;
        self.last_recorded_at_ns = recorded_at_ns;
        let mut index_batch = IndexBatch {
            log_len_after: self.next_seq,
            events: Vec::with_capacity(staged.len()),
            nodes,
        };
        if let Ok(mut overlay) = self.shared.index.lock() {
            for record in &staged {
                overlay.ids.insert(record.header.event.id, record.header.seq);
            }
        }
        if let Ok(mut log) = self.shared.log.write()
            && let Some(segment) = log.segments.last_mut()
        {
            for record in &staged {
                segment.push(base_offset + record.offset_in_group, base_offset + record.end_in_group);
            }
        }
        for record in &staged {
            index_batch.events.push(IndexedEvent {
                id: record.header.event.id,
                stream: record.header.event.stream.clone(),
                stream_version: record.header.stream_version,
                seq: record.header.seq,
            });
        }
        let checkpoint = Arc::new(checkpoint);
        self.shared.publish(self.next_seq, Arc::clone(&checkpoint));
        if self.index_tx.send(index_batch).is_err() {
            self.poisoned = Some("the indexer stopped".to_string());
        }
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
    }

    /// Checks one request against ledger state and stages its records.
    /// On error nothing of the request is staged.
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &mut self,
        command: &Command,
        recorded_at_ns: i64,
        buf: &mut Vec<u8>,
        staged: &mut Vec<Staged>,
        group_ids: &mut HashMap<[u8; 16], usize>,
        frontier: &mut Frontier,
        nodes: &mut Vec<TreeNode>,
    ) -> Result<Pending> {
        let events = &command.events;
        // Idempotency: which ids are already in the log (or this group)?
        let mut existing: Vec<Option<(u64, RecordHeader)>> = Vec::with_capacity(events.len());
        for event in events {
            existing.push(self.find_existing(&event.header.id, staged, group_ids)?);
        }
        let n_existing = existing.iter().filter(|e| e.is_some()).count();
        if n_existing > 0 {
            let mut receipts = Vec::with_capacity(events.len());
            for (event, found) in events.iter().zip(&existing) {
                let Some((seq, header)) = found else { continue };
                let event_id = Uuid::from_bytes(event.header.id);
                if header.event != event.header {
                    return Err(LedgerError::IdConflict { event_id, seq: *seq });
                }
                if n_existing < events.len() {
                    return Err(LedgerError::PartialDuplicate { event_id, seq: *seq });
                }
                receipts.push(Receipt {
                    event_id,
                    seq: *seq,
                    stream_version: header.stream_version,
                    record_hash: record_hash(&header.encode()),
                    recorded_at_ns: header.recorded_at_ns,
                    prev_hash: header.prev_hash,
                });
            }
            return Ok(Pending::Duplicate(receipts));
        }
        // Resolve every stream head first: after this, staging cannot fail,
        // so a request is never half-staged.
        let mut heads: HashMap<&str, Option<u64>> = HashMap::new();
        for event in events {
            let stream = event.header.stream.as_str();
            if !heads.contains_key(stream) {
                heads.insert(stream, self.stream_head(stream)?);
            }
        }
        if command.expected != ExpectedVersion::Any {
            let stream = &events[0].header.stream;
            let actual = heads.get(stream.as_str()).copied().flatten();
            let ok = match command.expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => actual.is_none(),
                ExpectedVersion::Exact(v) => actual == Some(v),
            };
            if !ok {
                return Err(LedgerError::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected: command.expected,
                    actual,
                });
            }
        }
        // Stage: from here on nothing can fail for this request.
        let first = staged.len();
        let tree_hash: HashAlg = self.shared.identity.tree_hash;
        for (i, event) in events.iter().enumerate() {
            let head = heads.get_mut(event.header.stream.as_str());
            let stream_version = match head {
                Some(head) => {
                    let version = head.map_or(0, |v| v + 1);
                    *head = Some(version);
                    version
                }
                None => 0,
            };
            let seq = self.next_seq + staged.len() as u64;
            let prev_hash = staged.last().map_or(self.last_hash, |s| s.record_hash);
            let header = RecordHeader {
                seq,
                stream_version,
                recorded_at_ns,
                prev_hash,
                event: event.header.clone(),
            };
            let canonical = header.encode();
            let hash = record_hash(&canonical);
            let flags = if i + 1 == events.len() { FLAG_BATCH_END } else { 0 };
            let offset_in_group = buf.len() as u64;
            encode_frame(buf, flags, &canonical, &event.payload);
            debug_assert!(buf.len() >= FRAME_HEADER_LEN);
            for (level, index, hash) in frontier.push(tree_hash.leaf_hash(&hash))? {
                nodes.push(TreeNode { level, index, hash });
            }
            self.stream_heads.insert(event.header.stream.clone(), stream_version);
            group_ids.insert(event.header.id, staged.len());
            staged.push(Staged {
                header,
                record_hash: hash,
                offset_in_group,
                end_in_group: buf.len() as u64,
            });
        }
        Ok(Pending::New {
            first,
            count: events.len(),
        })
    }

    /// An id's existing record: in this group, unindexed, or in the store.
    fn find_existing(
        &self,
        id: &[u8; 16],
        staged: &[Staged],
        group_ids: &HashMap<[u8; 16], usize>,
    ) -> Result<Option<(u64, RecordHeader)>> {
        if let Some(&i) = group_ids.get(id) {
            return Ok(Some((staged[i].header.seq, staged[i].header.clone())));
        }
        let seq = match self.shared.index.lock()?.ids.get(id).copied() {
            Some(seq) => Some(seq),
            None => self.shared.store.seq_of_event(id)?,
        };
        let Some(seq) = seq else { return Ok(None) };
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
        let written = self.file.write_all(buf).and_then(|()| {
            if self.shared.config.unsafe_no_sync {
                Ok(())
            } else {
                self.file.sync_data()
            }
        });
        if let Err(err) = written {
            // Best effort: take the partial group back off the disk. Recovery
            // would drop it anyway if its batch-end frame is missing.
            let _ = self.file.set_len(offset).and_then(|()| self.file.sync_all());
            return Err(LedgerError::io(format!("appending to {}", self.path.display()), err));
        }
        self.len += buf.len() as u64;
        Ok(offset)
    }

    /// Closes the tail segment and starts a new one at `next_seq`.
    fn roll(&mut self) -> Result<()> {
        let header = SegmentHeader {
            tree_hash: self.shared.identity.tree_hash,
            first_seq: self.next_seq,
        };
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
