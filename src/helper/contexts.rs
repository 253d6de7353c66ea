//! The agent's side of code-interpreter contexts: which contexts the environment has, each
//! kept by a `context` helper (context_host.rs) that outlives the requests it serves. The
//! agent routes each `ContextRequest` to its context's helper (starting the helper when a
//! context is created), relays the helper's frames to the host, answers lists itself, and
//! forgets a context when its helper ends.
//!
//! The helpers are started like every other helper the agent starts, so a sweep spares them
//! and what they run; their stdin and stdout are pipes held by PID 1 and by them, both
//! non-dumpable.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use super::agent::{Children, Replies};
use crate::protocol::{
    encode_agent_frames, AgentDecoder, AgentFrame, AgentKind, ContextInfo, ContextRefusal,
    ContextReply, ContextRequest, Language, Role, AGENT_CHILDREN_ENV, CONTEXT_MAX_REQUEST,
    HELPER_PATH, MAX_CONTEXTS,
};

/// One context's helper, as the agent knows it.
struct Entry {
    /// Tells this helper from a later one of the same name.
    generation: u64,
    language: Language,
    /// Frames for the helper's stdin, written by a thread (a busy helper never blocks PID 1).
    input: Sender<Vec<u8>>,
    /// What the helper last said about itself (from its replies).
    info: ContextInfo,
    /// Requests sent to the helper and not yet answered.
    pending: Vec<u64>,
}

#[derive(Default)]
struct Table {
    entries: HashMap<String, Entry>,
    next_generation: u64,
}

/// The environment's contexts, and the requests still arriving.
#[derive(Default)]
pub struct Contexts {
    table: Arc<Mutex<Table>>,
    arriving: HashMap<u64, Vec<u8>>,
}

impl Contexts {
    pub fn handle(&mut self, frame: AgentFrame, replies: &Replies, children: &Children) {
        let request = frame.request;
        match frame.kind {
            AgentKind::ContextRequest | AgentKind::ContextRequestEnd => {
                let body = self.arriving.entry(request).or_default();
                if body.len() + frame.payload.len() > CONTEXT_MAX_REQUEST {
                    self.arriving.remove(&request);
                    let message =
                        format!("a context request is at most {CONTEXT_MAX_REQUEST} bytes");
                    refuse(replies, request, ContextRefusal::Failed { message });
                    return;
                }
                body.extend_from_slice(&frame.payload);
                if frame.kind == AgentKind::ContextRequestEnd {
                    let body = self.arriving.remove(&request).unwrap_or_default();
                    match serde_json::from_slice::<ContextRequest>(&body) {
                        Ok(req) => self.route(request, req, replies, children),
                        Err(e) => {
                            let message = format!("bad context request: {e}");
                            refuse(replies, request, ContextRefusal::Failed { message });
                        }
                    }
                }
            }
            AgentKind::ContextCancel => {
                let Ok(table) = self.table.lock() else { return };
                if let Some(entry) = table
                    .entries
                    .values()
                    .find(|e| e.pending.contains(&request))
                {
                    for frame in encode_agent_frames(AgentKind::ContextCancel, request, &[]) {
                        let _ = entry.input.send(frame);
                    }
                }
            }
            _ => {}
        }
    }

    fn route(&mut self, request: u64, req: ContextRequest, replies: &Replies, children: &Children) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        let (name, language, creates) = match &req {
            ContextRequest::List => {
                let mut infos: Vec<ContextInfo> = table
                    .entries
                    .values()
                    .map(|e| ContextInfo {
                        busy: !e.pending.is_empty(),
                        ..e.info.clone()
                    })
                    .collect();
                infos.sort_by(|a, b| a.name.cmp(&b.name));
                send_reply(replies, request, &ContextReply::Contexts(infos));
                return;
            }
            ContextRequest::Create {
                context, language, ..
            } => (context, Some(*language), true),
            ContextRequest::Run { context, cell } => (context, Some(cell.language), false),
            ContextRequest::Reset { context } | ContextRequest::Close { context } => {
                (context, None, false)
            }
        };
        let name = name.clone();
        if let Some(entry) = table.entries.get(&name) {
            if creates {
                refuse(replies, request, ContextRefusal::Exists { context: name });
                return;
            }
            if language.is_some_and(|l| l != entry.language) {
                let language = entry.language;
                refuse(
                    replies,
                    request,
                    ContextRefusal::WrongLanguage {
                        context: name,
                        language,
                    },
                );
                return;
            }
        } else {
            let Some(language) = language else {
                refuse(replies, request, ContextRefusal::NotFound { context: name });
                return;
            };
            if table.entries.len() >= MAX_CONTEXTS {
                refuse(
                    replies,
                    request,
                    ContextRefusal::TooMany {
                        limit: MAX_CONTEXTS,
                    },
                );
                return;
            }
            let workdir = match &req {
                ContextRequest::Create { workdir, .. } => workdir.clone(),
                ContextRequest::Run { cell, .. } => cell.workdir.clone(),
                _ => crate::protocol::WORKSPACE.to_string(),
            };
            table.next_generation += 1;
            let generation = table.next_generation;
            match start_host(
                &name,
                language,
                &workdir,
                generation,
                &self.table,
                replies,
                children,
            ) {
                Ok(entry) => {
                    table.entries.insert(name.clone(), entry);
                }
                Err(message) => {
                    refuse(replies, request, ContextRefusal::Failed { message });
                    return;
                }
            }
        }
        let Some(entry) = table.entries.get_mut(&name) else {
            return;
        };
        let Ok(body) = serde_json::to_vec(&req) else {
            return;
        };
        entry.pending.push(request);
        let frames = encode_agent_frames(AgentKind::ContextRequest, request, &body)
            .into_iter()
            .chain(encode_agent_frames(
                AgentKind::ContextRequestEnd,
                request,
                &[],
            ));
        for frame in frames {
            let _ = entry.input.send(frame);
        }
    }
}

fn refuse(replies: &Replies, request: u64, refusal: ContextRefusal) {
    send_reply(replies, request, &ContextReply::Refused(refusal));
}

fn send_reply(replies: &Replies, request: u64, reply: &ContextReply) {
    let body = serde_json::to_vec(reply).unwrap_or_default();
    replies.send(AgentKind::ContextReply, request, &body);
    replies.send(AgentKind::End, request, &[]);
}

/// Starts a context's helper, with a thread feeding its stdin and one relaying its frames
/// (and forgetting the context when it ends).
fn start_host(
    name: &str,
    language: Language,
    workdir: &str,
    generation: u64,
    table: &Arc<Mutex<Table>>,
    replies: &Replies,
    children: &Children,
) -> Result<Entry, String> {
    let mut child = Command::new(HELPER_PATH)
        .args(Role::Context.args(&[language.as_str(), workdir, name]))
        .current_dir("/")
        .env(AGENT_CHILDREN_ENV, children.list())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start adde's context helper: {e}"))?;
    let pid = child.id();
    children.update(pid, true);
    let (input, frames) = channel::<Vec<u8>>();
    if let Some(mut stdin) = child.stdin.take() {
        std::thread::spawn(move || {
            for frame in frames {
                if stdin.write_all(&frame).is_err() {
                    break;
                }
            }
        });
    }
    let mut stdout: Option<Box<dyn Read + Send>> = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn Read + Send>);
    let table = table.clone();
    let replies = replies.clone();
    let children = children.clone();
    let name_owned = name.to_string();
    std::thread::spawn(move || {
        if let Some(stdout) = stdout.as_mut() {
            relay(stdout, &name_owned, generation, &table, &replies);
        }
        children.update(pid, false);
        // PID 1 reaps it; what it answered no more is answered here.
        drop(child);
        let Ok(mut table) = table.lock() else { return };
        if table
            .entries
            .get(&name_owned)
            .is_some_and(|e| e.generation == generation)
        {
            if let Some(entry) = table.entries.remove(&name_owned) {
                for request in entry.pending {
                    let message = format!("context {name_owned} ended before it answered");
                    refuse(&replies, request, ContextRefusal::Failed { message });
                }
            }
        }
    });
    Ok(Entry {
        generation,
        language,
        input,
        info: ContextInfo {
            name: name.to_string(),
            language,
            interpreter: String::new(),
            execution_count: 0,
            busy: false,
        },
        pending: Vec::new(),
    })
}

/// Relays a context helper's frames to the host, keeping the agent's view of the context
/// (its interpreter, its count, what is pending) up to date from its replies.
fn relay(
    stdout: &mut Box<dyn Read + Send>,
    name: &str,
    generation: u64,
    table: &Arc<Mutex<Table>>,
    replies: &Replies,
) {
    let mut decoder = AgentDecoder::default();
    let mut answers: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = stdout.read(&mut buf) {
        if n == 0 {
            return;
        }
        decoder.push(&buf[..n]);
        while let Some(frame) = decoder.next_frame() {
            let Ok(frame) = frame else { continue };
            match frame.kind {
                AgentKind::Stdout | AgentKind::Stderr => {}
                AgentKind::ContextReply => {
                    answers
                        .entry(frame.request)
                        .or_default()
                        .extend(&frame.payload);
                }
                AgentKind::End => {
                    let answer = answers.remove(&frame.request).unwrap_or_default();
                    note(table, name, generation, frame.request, &answer);
                }
                _ => continue,
            }
            replies.send(frame.kind, frame.request, &frame.payload);
        }
    }
}

/// What a reply says about its context, kept for lists; the request is answered.
fn note(table: &Arc<Mutex<Table>>, name: &str, generation: u64, request: u64, answer: &[u8]) {
    let Ok(mut table) = table.lock() else { return };
    let Some(entry) = table
        .entries
        .get_mut(name)
        .filter(|e| e.generation == generation)
    else {
        return;
    };
    entry.pending.retain(|r| *r != request);
    match serde_json::from_slice::<ContextReply>(answer) {
        // Forgotten at once, so that the name can be used again.
        Ok(ContextReply::Closed) => {
            table.entries.remove(name);
        }
        Ok(ContextReply::Context(info)) => entry.info = info,
        Ok(ContextReply::Ran(outcome)) => {
            entry.info.execution_count = if outcome.context_restarted {
                0
            } else {
                outcome.execution_count
            };
            entry.info.interpreter = outcome.interpreter;
        }
        _ => {}
    }
}
