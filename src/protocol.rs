//! What adde on the host and its helper inside the container say to each other during one
//! execution: a spec on the helper's command line, the file on its stdin, and on its stdout a
//! stream of frames (the program's stdout and stderr, then one status frame).
//!
//! A frame is one tag byte, a big-endian u32 length and that many bytes. The host never has to
//! ask the engine for the exit code (one round trip saved): the status frame carries it.

use serde::{Deserialize, Serialize};

/// Where the helper binary lives inside every environment adde creates: a read-only volume.
pub const HELPER_DIR: &str = "/.adde";
pub const HELPER_PATH: &str = "/.adde/adde";
/// The first argument that switches the binary into its in-container role.
pub const HELPER_FLAG: &str = "__helper";
pub const WORKSPACE: &str = "/workspace";
pub const DEPS_DIR: &str = "/opt/adde/deps";
/// Exit code reported for a run stopped at its deadline, as GNU timeout does.
pub const TIMEOUT_EXIT_CODE: i64 = 124;

pub const TAG_STDOUT: u8 = 1;
pub const TAG_STDERR: u8 = 2;
pub const TAG_STATUS: u8 = 3;

/// One execution, as the helper receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSpec {
    pub run_id: String,
    /// The file to write before running, relative to the working directory; its bytes come
    /// first on stdin.
    pub file: Option<FileSpec>,
    /// Bytes after the file on stdin that are the program's own standard input.
    pub stdin_len: u64,
    /// Command lines to try in order; the first whose program exists is run.
    pub candidates: Vec<Vec<String>>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileSpec {
    pub path: String,
    pub len: u64,
    pub executable: bool,
}

/// How an execution ended, as the helper reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunStatus {
    pub exit_code: i64,
    pub signal: Option<String>,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub duration_ms: u64,
    pub command: Vec<String>,
    /// Set when the program could not be started at all.
    pub error: Option<HelperFailure>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HelperFailure {
    InterpreterNotFound { tried: Vec<String> },
    Setup { message: String },
}

/// One entry of the helper's `list` role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ListEntry {
    /// Path relative to the folder listed.
    pub name: String,
    /// Absolute path in the environment.
    pub path: String,
    /// "file", "dir", "symlink" or "other".
    pub kind: String,
    pub size: u64,
    /// Permission bits in octal, e.g. "0644".
    pub mode: String,
    /// Last modification, UTC (RFC 3339).
    pub modified: String,
}

/// The first line the helper's `read` role prints; the file's bytes follow.
#[derive(Debug, Serialize, Deserialize)]
pub enum FileHead {
    File { size: u64 },
    Dir,
    Missing,
}

/// What the helper's `list` role prints.
#[derive(Debug, Serialize, Deserialize)]
pub enum Listing {
    Entries(Vec<ListEntry>),
    NotFound,
}

pub fn encode_frame(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(tag);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Reassembles frames from chunks cut anywhere.
#[derive(Default)]
pub struct FrameDecoder {
    pending: Vec<u8>,
}

impl FrameDecoder {
    pub fn push(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
    }

    /// Bytes that never made a whole frame.
    pub fn into_pending(self) -> Vec<u8> {
        self.pending
    }

    pub fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.pending.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes(self.pending[1..5].try_into().ok()?) as usize;
        if self.pending.len() < 5 + len {
            return None;
        }
        let tag = self.pending[0];
        let payload = self.pending[5..5 + len].to_vec();
        self.pending.drain(..5 + len);
        Some((tag, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_chunking() {
        let mut wire = encode_frame(TAG_STDOUT, b"hello");
        wire.extend(encode_frame(TAG_STDERR, b""));
        wire.extend(encode_frame(TAG_STATUS, b"{}"));
        for cut in 1..wire.len() {
            let mut decoder = FrameDecoder::default();
            let mut frames = Vec::new();
            for chunk in wire.chunks(cut) {
                decoder.push(chunk);
                while let Some(frame) = decoder.next_frame() {
                    frames.push(frame);
                }
            }
            assert_eq!(
                frames,
                vec![
                    (TAG_STDOUT, b"hello".to_vec()),
                    (TAG_STDERR, vec![]),
                    (TAG_STATUS, b"{}".to_vec())
                ]
            );
            assert!(decoder.next_frame().is_none());
        }
    }
}
