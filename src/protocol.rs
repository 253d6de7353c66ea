//! Everything adde on the host and its helper inside the container say to each other: the
//! helper's roles and their arguments, and the messages they exchange.
//!
//! One execution is a spec on the helper's command line, the file on its stdin, and on its
//! stdout a stream of frames (the program's stdout and stderr, then one status frame). A frame
//! is one tag byte, a big-endian u32 length and that many bytes. The host never has to ask the
//! engine for the exit code (one round trip saved): the status frame carries it.

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

/// What the helper does, named by the argument after [`HELPER_FLAG`]. Each role's arguments
/// are listed with it; the helper's module documentation says what each one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `idle`: the environment's main process.
    Idle,
    /// `run RUN_SPEC` ([`RunSpec`] as JSON): supervises one execution.
    Run,
    /// `install INSTALL_SPEC` ([`InstallSpec`] as JSON): installs dependencies.
    Install,
    /// `chown USER`: gives /workspace to USER.
    Chown,
    /// `write PATH MODE`: writes stdin to PATH; prints [`WRITE_OK`].
    Write,
    /// `read PATH CAP`: prints a [`FileHead`] line, then up to CAP bytes.
    Read,
    /// `list PATH [recursive]`: prints a [`Listing`]; [`LIST_RECURSIVE`] lists sub-folders.
    List,
    /// `kill RUN_ID`: kills what the supervisor of RUN_ID started.
    Kill,
    /// `sweep [RUN_ID]`: kills every process that neither adde nor a live execution owns
    /// (and run RUN_ID, supervisor included); prints how many it killed.
    Sweep,
}

impl Role {
    const ALL: [Role; 9] = [
        Role::Idle,
        Role::Run,
        Role::Install,
        Role::Chown,
        Role::Write,
        Role::Read,
        Role::List,
        Role::Kill,
        Role::Sweep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Idle => "idle",
            Role::Run => "run",
            Role::Install => "install",
            Role::Chown => "chown",
            Role::Write => "write",
            Role::Read => "read",
            Role::List => "list",
            Role::Kill => "kill",
            Role::Sweep => "sweep",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The arguments that start this role from the helper's entrypoint (a container's command).
    pub fn args(self, args: &[&str]) -> Vec<String> {
        [HELPER_FLAG, self.as_str()]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect()
    }

    /// The whole command line of an Engine-API exec of this role.
    pub fn exec_argv(self, args: &[&str]) -> Vec<String> {
        std::iter::once(HELPER_PATH.to_string())
            .chain(self.args(args))
            .collect()
    }
}

pub const LIST_RECURSIVE: &str = "recursive";
/// What the `write` role prints once the file is written.
pub const WRITE_OK: &str = "ok";
/// The first line the `install` role prints on stderr names the package manager it chose.
pub const INSTALL_MARKER: &str = "adde: package manager: ";
/// Exit code of the `install` role when the image has no package manager it knows.
pub const NO_PACKAGE_MANAGER_EXIT: u8 = 127;

/// What the `install` role receives.
#[derive(Debug, Serialize, Deserialize)]
pub struct InstallSpec {
    pub packages: Vec<String>,
    /// "pip" or "npm"; detected from the image when absent.
    pub manager: Option<String>,
}

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
    File {
        size: u64,
    },
    Dir,
    Missing,
    /// A FIFO, a socket or a device: never read.
    NotRegular {
        kind: String,
    },
    Unreadable {
        message: String,
    },
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
    fn every_role_parses_back_from_its_name() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("nope"), None);
        assert_eq!(
            Role::Read.exec_argv(&["/tmp/a", "10"]),
            [HELPER_PATH, HELPER_FLAG, "read", "/tmp/a", "10"]
        );
    }

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
