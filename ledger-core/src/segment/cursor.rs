//! Sequential frame reading from a segment file by positioned reads, used by
//! recovery (whole files) and by readers (up to the committed end).
//!
//! The cursor classifies what it cannot read — an incomplete frame, a CRC
//! mismatch, an absurd length — and leaves the verdict (torn tail or
//! corruption) to its caller, which knows whether this is the end of the log.

use std::fs::File;
use std::os::unix::fs::FileExt as _;

use super::frame::{FRAME_HEADER_LEN, FrameHeader, MAX_BODY_LEN};

/// One frame read from a segment.
#[derive(Debug)]
pub struct RawFrame {
    /// Byte offset of the frame in its segment.
    pub offset: u64,
    /// Frame flags.
    pub flags: u8,
    /// The body: canonical length, canonical bytes, payload.
    pub body: Vec<u8>,
}

/// One frame read from a segment, its body borrowed from the cursor.
#[derive(Debug)]
pub struct FrameRef<'a> {
    /// Byte offset of the frame in its segment.
    pub offset: u64,
    /// Frame flags.
    pub flags: u8,
    /// The body: canonical length, canonical bytes, payload.
    pub body: &'a [u8],
}

/// Why the next frame could not be read.
#[derive(Debug)]
pub enum FrameProblem {
    /// Fewer bytes remain than the frame needs: a write was cut short.
    Incomplete {
        /// Where the frame starts.
        offset: u64,
    },
    /// The length field is beyond any valid record.
    AbsurdLength {
        /// Where the frame starts.
        offset: u64,
        /// The length found.
        body_len: u32,
    },
    /// The body does not match its checksum.
    BadCrc {
        /// Where the frame starts.
        offset: u64,
        /// Whether the frame ends exactly at the end of the readable bytes.
        ends_at_eof: bool,
    },
    /// The OS failed the read.
    Io(std::io::Error),
}

/// Reads frames one after another from `offset` up to `end`.
#[derive(Debug)]
pub struct SegmentCursor<'a> {
    file: &'a File,
    offset: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
}

/// First read size: a point read of one record stays small...
const FIRST_CHUNK: usize = 8 * 1024;
/// ...and each refill doubles up to this, so scans read in large chunks.
const MAX_CHUNK: usize = 1024 * 1024;

impl<'a> SegmentCursor<'a> {
    /// A cursor over `file` from `offset` (a frame boundary) to `end`.
    pub fn new(file: &'a File, offset: u64, end: u64) -> SegmentCursor<'a> {
        SegmentCursor {
            file,
            offset,
            end,
            buf: Vec::new(),
            buf_start: offset,
            chunk: FIRST_CHUNK,
        }
    }

    /// Offset of the next frame.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next frame, `Ok(None)` exactly at `end`.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame>, FrameProblem> {
        Ok(self.next_frame_ref()?.map(|frame| RawFrame {
            offset: frame.offset,
            flags: frame.flags,
            body: frame.body.to_vec(),
        }))
    }

    /// The next frame with its body borrowed from the cursor's buffer (no
    /// copy), `Ok(None)` exactly at `end`: for sequential scans.
    pub fn next_frame_ref(&mut self) -> Result<Option<FrameRef<'_>>, FrameProblem> {
        let offset = self.offset;
        if offset == self.end {
            return Ok(None);
        }
        let head = self.bytes(offset, FRAME_HEADER_LEN)?;
        let Some(head) = head else {
            return Err(FrameProblem::Incomplete { offset });
        };
        let mut fixed = [0u8; FRAME_HEADER_LEN];
        fixed.copy_from_slice(head);
        let header = FrameHeader::parse(&fixed);
        if header.body_len > MAX_BODY_LEN || header.body_len < 4 {
            return Err(FrameProblem::AbsurdLength {
                offset,
                body_len: header.body_len,
            });
        }
        let body_start = offset + FRAME_HEADER_LEN as u64;
        let body_len = header.body_len as usize;
        let Some(body) = self.bytes(body_start, body_len)? else {
            return Err(FrameProblem::Incomplete { offset });
        };
        if !header.crc_matches(body) {
            let frame_end = body_start + u64::from(header.body_len);
            return Err(FrameProblem::BadCrc {
                offset,
                ends_at_eof: frame_end == self.end,
            });
        }
        self.offset = body_start + u64::from(header.body_len);
        // `bytes` left the body in the buffer.
        let start = (body_start - self.buf_start) as usize;
        Ok(Some(FrameRef {
            offset,
            flags: header.flags,
            body: &self.buf[start..start + body_len],
        }))
    }

    /// `len` bytes at `at`, or `None` if they extend past `end`.
    fn bytes(&mut self, at: u64, len: usize) -> Result<Option<&[u8]>, FrameProblem> {
        if at + len as u64 > self.end {
            return Ok(None);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if at < self.buf_start || at + len as u64 > buf_end {
            let want = len.max(self.chunk).min((self.end - at) as usize);
            self.chunk = (self.chunk * 2).min(MAX_CHUNK);
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, at).map_err(FrameProblem::Io)?;
            self.buf_start = at;
        }
        let start = (at - self.buf_start) as usize;
        Ok(Some(&self.buf[start..start + len]))
    }
}
