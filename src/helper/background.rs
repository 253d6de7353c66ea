//! Background processes, kept by the resident agent (PID 1): programs that outlive the call
//! that started them (a dev server, a watcher). Each runs under its own supervisor (the `run`
//! role, as an ordinary execution does: a subreaper that owns every process the program
//! starts and kills them when it exits), started by the agent, which reads the supervisor's
//! frames and keeps the last `max_output_bytes` of each stream and the exit status until the
//! host asks. The supervisor is the agent's child and is named to every helper the agent
//! starts, so sweeps spare it and its tree.
//!
//! Nothing in the environment can reach this state: the output arrives on a pipe only the
//! supervisor and PID 1 hold (both non-dumpable), framed by the supervisor, so a run can
//! neither read it nor forge a frame; requests and replies travel on PID 1's stdin and
//! stdout, which only the host reaches (by attaching).

use std::collections::VecDeque;
use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::agent::{helper_command, Children, Replies};
use crate::protocol::{
    AgentKind, FrameDecoder, HelperFailure, ProcOutput, ProcRefusal, ProcReply, ProcRequest,
    ProcState, Role, RunSpec, RunStatus, StreamRead, TAG_STARTED, TAG_STATUS, TAG_STDERR,
    TAG_STDOUT,
};

/// Most background processes running at once, whatever the policy: each costs PID 1 up to
/// twice its `max_output_bytes`, counted against the environment's memory.
pub const MAX_RUNNING: u32 = 16;
/// Most processes remembered, ended ones included; the oldest ended one is forgotten first.
const MAX_RECORDS: usize = 64;

/// The background processes of this environment, shared with the threads that read their
/// supervisors and answer waits.
#[derive(Clone, Default)]
pub(super) struct Background(Arc<(Mutex<Vec<Record>>, Condvar)>);

struct Record {
    id: String,
    command: Vec<String>,
    started_at_ms: u64,
    /// The program's PID (its process group: it leads one) once its supervisor started it.
    program: Option<u32>,
    status: Option<RunStatus>,
    stdout: Kept,
    stderr: Kept,
}

impl Record {
    fn state(&self) -> ProcState {
        ProcState {
            id: self.id.clone(),
            command: self.command.clone(),
            started_at_ms: self.started_at_ms,
            status: self.status.clone(),
            stdout_bytes: self.stdout.total(),
            stderr_bytes: self.stderr.total(),
        }
    }
}

/// The last `cap` bytes of a stream, and how many came before them.
struct Kept {
    bytes: VecDeque<u8>,
    /// Offset of the first byte kept.
    start: u64,
    cap: usize,
}

impl Kept {
    fn new(cap: usize) -> Kept {
        Kept {
            bytes: VecDeque::new(),
            start: 0,
            cap,
        }
    }

    fn total(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    fn push(&mut self, data: &[u8]) {
        self.bytes.extend(data);
        let excess = self.bytes.len().saturating_sub(self.cap);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.start += excess as u64;
        }
    }

    /// Up to `max` bytes from `offset`. A character cut at the end of what is there is left
    /// for the next read, unless the stream has ended.
    fn read(&self, offset: u64, max: usize, ended: bool) -> StreamRead {
        let from = offset.clamp(self.start, self.total());
        let begin = (from - self.start) as usize;
        let end = begin.saturating_add(max).min(self.bytes.len());
        let mut chunk: Vec<u8> = self.bytes.range(begin..end).copied().collect();
        if !(ended && end == self.bytes.len()) {
            chunk.truncate(complete_prefix(&chunk));
        }
        let next = from + chunk.len() as u64;
        StreamRead {
            text: String::from_utf8_lossy(&chunk).into_owned(),
            offset: next,
            skipped: self.start.saturating_sub(offset),
            more: next < self.total(),
        }
    }
}

/// The length of `bytes` without a multi-byte UTF-8 character cut at its end.
fn complete_prefix(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(3) {
        let byte = bytes[len - back];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue;
        }
        let needs = match byte {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if needs > back { len - back } else { len };
    }
    len
}

impl Background {
    fn table(&self) -> MutexGuard<'_, Vec<Record>> {
        // A panicking reader thread leaves the table as it was: still usable.
        self.0 .0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers one request from the host (a `Start` or a `Wait` answers later, from a
    /// thread of its own).
    pub(super) fn handle(
        &self,
        request: u64,
        payload: &[u8],
        replies: &Replies,
        children: &Children,
    ) {
        let reply = match serde_json::from_slice::<ProcRequest>(payload) {
            Err(e) => ProcReply::Refused(ProcRefusal::Failed(format!("bad request: {e}"))),
            Ok(ProcRequest::Start {
                spec,
                env,
                workdir,
                max_output_bytes,
                max_running,
            }) => {
                let start = Start {
                    spec,
                    env,
                    workdir,
                    cap: max_output_bytes as usize,
                    max_running,
                };
                match self.start(start, request, replies, children) {
                    Ok(()) => return,
                    Err(refusal) => ProcReply::Refused(refusal),
                }
            }
            Ok(ProcRequest::Read {
                id,
                stdout_offset,
                stderr_offset,
                max_bytes,
            }) => self.with(&id, |record| {
                let ended = record.status.is_some();
                ProcReply::Output(ProcOutput {
                    state: record.state(),
                    stdout: record.stdout.read(stdout_offset, max_bytes as usize, ended),
                    stderr: record.stderr.read(stderr_offset, max_bytes as usize, ended),
                })
            }),
            Ok(ProcRequest::Signal { id, signal }) => self.with(&id, |record| {
                // The state as it was when the signal went: running, or not sent.
                let state = record.state();
                if let (None, Some(program)) = (&record.status, record.program) {
                    // SAFETY: plain kill(2) of the program's process group (it called setsid).
                    unsafe { libc::kill(-(program as i32), signal) };
                }
                ProcReply::State(state)
            }),
            Ok(ProcRequest::List) => {
                ProcReply::List(self.table().iter().map(Record::state).collect())
            }
            Ok(ProcRequest::Wait { id, timeout_ms }) => {
                let background = self.clone();
                let replies = replies.clone();
                std::thread::spawn(move || {
                    let reply = background.wait(&id, Duration::from_millis(timeout_ms));
                    send_reply(&replies, request, &reply);
                });
                return;
            }
        };
        send_reply(replies, request, &reply);
    }

    fn with(&self, id: &str, answer: impl FnOnce(&Record) -> ProcReply) -> ProcReply {
        match self.table().iter().find(|r| r.id == id) {
            Some(record) => answer(record),
            None => ProcReply::Refused(ProcRefusal::NotFound),
        }
    }

    fn wait(&self, id: &str, timeout: Duration) -> ProcReply {
        let until = Instant::now() + timeout;
        let (_, ended) = &*self.0;
        let mut table = self.table();
        loop {
            let Some(record) = table.iter().find(|r| r.id == id) else {
                return ProcReply::Refused(ProcRefusal::NotFound);
            };
            let left = until.saturating_duration_since(Instant::now());
            if record.status.is_some() || left.is_zero() {
                return ProcReply::State(record.state());
            }
            table = match ended.wait_timeout(table, left) {
                Ok((table, _)) => table,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Starts a supervisor for the process; the reply goes once the program has started (or
    /// failed to), from the thread that reads the supervisor.
    fn start(
        &self,
        start: Start,
        request: u64,
        replies: &Replies,
        children: &Children,
    ) -> Result<(), ProcRefusal> {
        let mut table = self.table();
        if table.iter().any(|r| r.id == start.spec.run_id) {
            return Err(ProcRefusal::Failed(format!(
                "a process {} exists already",
                start.spec.run_id
            )));
        }
        let running = table.iter().filter(|r| r.status.is_none()).count() as u32;
        let (limit, by_policy) = match start.max_running {
            Some(cap) if cap < MAX_RUNNING => (cap, true),
            _ => (MAX_RUNNING, false),
        };
        if running >= limit {
            return Err(ProcRefusal::TooMany {
                running,
                limit,
                by_policy,
            });
        }
        if table.len() >= MAX_RECORDS {
            if let Some(oldest) = table.iter().position(|r| r.status.is_some()) {
                table.remove(oldest);
            }
        }
        let spec_json =
            serde_json::to_string(&start.spec).map_err(|e| ProcRefusal::Failed(e.to_string()))?;
        let mut child = helper_command(
            Role::Run,
            &[&spec_json],
            &start.env,
            &start.workdir,
            children,
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            ProcRefusal::Failed(format!(
                "cannot start adde's helper in {}: {e}",
                start.workdir
            ))
        })?;
        let supervisor = child.id();
        children.update(supervisor, true);
        let id = start.spec.run_id.clone();
        table.push(Record {
            id: id.clone(),
            command: start.spec.candidates.first().cloned().unwrap_or_default(),
            started_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            program: None,
            status: None,
            stdout: Kept::new(start.cap),
            stderr: Kept::new(start.cap),
        });
        drop(table);
        let Some(frames) = child.stdout.take() else {
            return Err(ProcRefusal::Failed("the helper has no output".into()));
        };
        let background = self.clone();
        let replies = replies.clone();
        let children = children.clone();
        std::thread::spawn(move || {
            background.follow(&id, frames, request, &replies);
            children.update(supervisor, false);
            // PID 1 reaps its children (orphans included): the status came in a frame.
            drop(child);
        });
        Ok(())
    }

    /// Reads one supervisor's frames into its record until it reports (or dies), answering
    /// the start request once the program has started or failed to.
    fn follow(&self, id: &str, mut frames: impl Read, request: u64, replies: &Replies) {
        let mut decoder = FrameDecoder::default();
        let mut buf = vec![0u8; 64 * 1024];
        let mut answered = false;
        let mut status = None;
        while status.is_none() {
            let n = match frames.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            decoder.push(&buf[..n]);
            if decoder.oversized() {
                break;
            }
            while let Some((tag, payload)) = decoder.next_frame() {
                let mut table = self.table();
                let Some(record) = table.iter_mut().find(|r| r.id == id) else {
                    return;
                };
                match tag {
                    TAG_STDOUT => record.stdout.push(&payload),
                    TAG_STDERR => record.stderr.push(&payload),
                    TAG_STARTED => {
                        record.program = std::str::from_utf8(&payload)
                            .ok()
                            .and_then(|pid| pid.parse().ok());
                        let state = record.state();
                        drop(table);
                        send_reply(replies, request, &ProcReply::State(state));
                        answered = true;
                    }
                    TAG_STATUS => {
                        status = Some(serde_json::from_slice(&payload).unwrap_or_else(|e| {
                            lost(format!("its supervisor's report is unreadable: {e}"))
                        }));
                        break;
                    }
                    _ => {}
                }
            }
        }
        let status = status.unwrap_or_else(|| {
            lost("its supervisor ended without reporting: it was killed".into())
        });
        let mut table = self.table();
        let Some(at) = table.iter().position(|r| r.id == id) else {
            return;
        };
        table[at].status = Some(status);
        let state = table[at].state();
        if !answered {
            // It never started: nothing to keep, the reply says why.
            table.remove(at);
        }
        drop(table);
        self.0 .1.notify_all();
        if !answered {
            send_reply(replies, request, &ProcReply::State(state));
        }
    }
}

/// A start request, unpacked.
struct Start {
    spec: RunSpec,
    env: Vec<String>,
    workdir: String,
    cap: usize,
    max_running: Option<u32>,
}

fn lost(message: String) -> RunStatus {
    RunStatus {
        exit_code: -1,
        error: Some(HelperFailure::Setup { message }),
        ..RunStatus::default()
    }
}

fn send_reply(replies: &Replies, request: u64, reply: &ProcReply) {
    let json = serde_json::to_vec(reply).unwrap_or_default();
    replies.send(AgentKind::ProcReply, request, &json);
    // `End`, as every request's last frame (the host reads contexts' replies the same way).
    replies.send(AgentKind::End, request, &[]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_output_is_the_tail_and_reads_say_what_they_missed() {
        let mut kept = Kept::new(8);
        kept.push(b"0123456789");
        assert_eq!((kept.start, kept.total()), (2, 10));
        let read = kept.read(0, 100, false);
        assert_eq!(read.text, "23456789");
        assert_eq!((read.offset, read.skipped, read.more), (10, 2, false));
        let read = kept.read(4, 3, false);
        assert_eq!(
            (read.text.as_str(), read.offset, read.skipped),
            ("456", 7, 0)
        );
        assert!(read.more);
        // Past the end: nothing, and the offset stays at the end.
        assert_eq!(kept.read(99, 10, false).offset, 10);
    }

    #[test]
    fn a_character_cut_at_the_end_waits_for_the_next_read() {
        let mut kept = Kept::new(64);
        let euro = "€".as_bytes();
        kept.push(b"a");
        kept.push(&euro[..2]);
        let read = kept.read(0, 64, false);
        assert_eq!((read.text.as_str(), read.offset), ("a", 1));
        kept.push(&euro[2..]);
        let read = kept.read(read.offset, 64, false);
        assert_eq!(read.text, "€");
        // Once the stream has ended, what is there is what there is.
        let mut cut = Kept::new(64);
        cut.push(&euro[..2]);
        assert_eq!(cut.read(0, 64, true).offset, 2);
        assert_eq!(complete_prefix("a€".as_bytes()), 4);
        assert_eq!(complete_prefix(&"a😀".as_bytes()[..3]), 1);
    }
}
