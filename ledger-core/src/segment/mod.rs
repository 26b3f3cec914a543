//! The segment log: append-only files that are the single source of truth.
//!
//! Files: [`file`](mod@file) (naming, header, creation), [`frame`] (record framing),
//! [`cursor`] (sequential reads), [`index`] (where records are),
//! [`recovery`] (the open scan: verify, truncate a torn tail, refuse
//! corruption), `prealloc` (synced zeros kept ahead of the writer). Writing is the group-commit writer's job (`commit.rs`).

pub mod cursor;
pub mod file;
pub mod frame;
pub mod index;
pub(crate) mod prealloc;
pub mod recovery;
