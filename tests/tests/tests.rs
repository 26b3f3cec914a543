//! Behaviour tests: one binary, one module per concern (raft-rs style).

mod append;
