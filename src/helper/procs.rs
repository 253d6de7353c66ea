//! The container's processes, as /proc shows them (the container's own PIDs, whatever the
//! host's are: no host PIDs, so this works against a remote engine too), and killing them.

use std::collections::HashSet;
use std::fs;
use std::time::Duration;

use crate::protocol::{AGENT_CHILDREN_ENV, HELPER_FLAG, HELPER_PATH};

/// One process, from /proc/PID/stat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// The session: a process can leave its session (setsid) but never join another.
    pub session: u32,
    pub state: char,
    /// Start time, in clock ticks since boot: orders processes by age.
    pub start: u64,
}

impl Proc {
    fn is_alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// Every process of the container, now.
fn snapshot() -> Vec<Proc> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter_map(|pid| parse_stat(pid, &fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
        .collect()
}

/// A /proc/PID/stat line; the command name may hold spaces and parens.
fn parse_stat(pid: u32, stat: &str) -> Option<Proc> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Proc {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The PIDs of `root`'s descendants (not `root` itself).
fn descendants(procs: &[Proc], root: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in procs.iter().filter(|p| p.ppid == parent && p.pid != root) {
            found.push(p.pid);
            frontier.push(p.pid);
        }
    }
    found
}

/// SIGKILLs the processes `targets` picks from fresh snapshots until it picks no live one
/// (they may fork meanwhile), reaping those of them that are our zombies except `keep` (a
/// child whose status the caller collects). Returns how many it killed.
fn kill_until_none(targets: impl Fn(&[Proc]) -> Vec<u32>, keep: Option<u32>) -> usize {
    let me = std::process::id();
    let mut killed = 0;
    for _ in 0..500 {
        let procs = snapshot();
        let picked: HashSet<u32> = targets(&procs).into_iter().collect();
        let mut alive = 0;
        for p in procs.iter().filter(|p| picked.contains(&p.pid)) {
            if !p.is_alive() {
                if p.ppid == me && Some(p.pid) != keep {
                    // SAFETY: reaping a specific zombie child; WNOHANG never blocks.
                    unsafe { libc::waitpid(p.pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
                }
                continue;
            }
            alive += 1;
            // SAFETY: plain kill(2).
            if unsafe { libc::kill(p.pid as i32, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
        if alive == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    killed
}

/// Kills every descendant of `root` (see [`kill_until_none`] for `keep`).
pub fn kill_tree(root: u32, keep: Option<u32>) -> usize {
    kill_until_none(|procs| descendants(procs, root), keep)
}

/// What a supervisor's kill reaches. Where it can be a child subreaper, its run's orphans
/// (double forks, setsid escapes) are re-parented to it and stay in its tree. Where it cannot
/// (gVisor answers EINVAL), they are re-parented to PID 1, so it also kills every process
/// that neither adde nor a live execution owns and that started since the supervisor did:
/// nothing older can be its run's. (Orphans of a concurrent run started later go too.)
pub struct RunScope {
    /// The supervisor's start time, when orphans escape its tree.
    orphans_since: Option<u64>,
}

impl RunScope {
    /// Makes the calling supervisor its run's subreaper, or notes that it could not be.
    pub fn claim() -> RunScope {
        // SAFETY: plain prctl; makes orphaned descendants our children instead of PID 1's.
        let subreaper = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0;
        let me = std::process::id();
        let started = || {
            let stat = fs::read_to_string(format!("/proc/{me}/stat")).ok()?;
            parse_stat(me, &stat).map(|p| p.start)
        };
        RunScope {
            // Unknown start: every stray is a candidate (0 is before everything).
            orphans_since: (!subreaper).then(|| started().unwrap_or(0)),
        }
    }

    /// Whether every process the run starts stays in the supervisor's tree (it is their
    /// subreaper), so that killing the tree kills them all.
    pub fn reaches_all(&self) -> bool {
        self.orphans_since.is_none()
    }

    /// Kills the run's processes (see [`kill_until_none`] for `keep`).
    pub fn kill(&self, keep: Option<u32>) -> usize {
        let me = std::process::id();
        let Some(since) = self.orphans_since else {
            return kill_tree(me, keep);
        };
        let helper_is_init = is_helper_cmdline(&cmdline(1));
        kill_until_none(
            |procs| {
                let mut picked = descendants(procs, me);
                let orphans = strays(procs, &helper_execs(procs), helper_is_init);
                picked.extend(
                    orphans
                        .into_iter()
                        .filter(|pid| procs.iter().any(|p| p.pid == *pid && p.start >= since)),
                );
                picked
            },
            keep,
        )
    }
}

/// Kills every descendant of `root` except `spare` itself (whose own descendants go too):
/// what a context's cell started, sparing the context's interpreter.
pub fn kill_tree_except(root: u32, spare: u32) -> usize {
    kill_until_none(
        |procs| {
            let mut targets = descendants(procs, root);
            targets.retain(|&pid| pid != spare);
            targets
        },
        Some(spare),
    )
}

/// Sends `signal` once to every descendant of `root`.
pub fn signal_tree(root: u32, signal: libc::c_int) {
    for pid in descendants(&snapshot(), root) {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(pid as i32, signal) };
    }
}

/// The command line of a process, NUL-separated.
fn cmdline(pid: u32) -> Vec<u8> {
    fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

fn is_helper_cmdline(cmdline: &[u8]) -> bool {
    cmdline.starts_with(format!("{HELPER_PATH}\0{HELPER_FLAG}\0").as_bytes())
}

/// adde's helpers (supervisors among them), alive and running adde's binary: those started
/// by Engine-API execs, whose parent PID is 0 inside the container's PID namespace (which no
/// process of a run can have: its orphans go to a subreaper or to PID 1), and those the agent
/// (PID 1) started: it names them in `AGENT_CHILDREN_ENV` for the helpers it starts, and
/// they are in PID 1's session, which no run's process can join (a run starts its own).
fn helper_execs(procs: &[Proc]) -> Vec<u32> {
    let agent_started: HashSet<u32> = agent_children().map(|(pid, _)| pid).collect();
    let agent_session = procs.iter().find(|p| p.pid == 1).map(|p| p.session);
    procs
        .iter()
        .filter(|p| p.pid != 1 && p.is_alive())
        .filter(|p| {
            p.ppid == 0
                || (p.ppid == 1
                    && (agent_started.contains(&p.pid) || Some(p.session) == agent_session))
        })
        .filter(|p| is_helper_cmdline(&cmdline(p.pid)))
        .map(|p| p.pid)
        .collect()
}

/// The helpers the agent (PID 1) names in `AGENT_CHILDREN_ENV`, with the run each spare
/// supervisor among them was handed.
fn agent_children() -> impl Iterator<Item = (u32, Option<String>)> {
    let named = std::env::var(AGENT_CHILDREN_ENV).unwrap_or_default();
    let entries: Vec<(u32, Option<String>)> = named
        .split(',')
        .filter_map(|entry| match entry.split_once(':') {
            Some((pid, run)) => Some((pid.parse().ok()?, Some(run.to_string()))),
            None => Some((entry.parse().ok()?, None)),
        })
        .collect();
    entries.into_iter()
}

/// The supervisor of run `run_id`, if it is alive: the helper whose command line names it,
/// or the one the agent handed it to (a spare, or a kept supervisor), unless that one's
/// command line names another run: a kept supervisor names the run it supervises now
/// (helper/title.rs), and the agent's list may be older than that.
fn supervisor_of(procs: &[Proc], run_id: &str) -> Option<u32> {
    if run_id.is_empty() {
        return None;
    }
    let needle = format!("\"run_id\":\"{run_id}\"");
    let handed =
        agent_children().find_map(|(pid, run)| (run.as_deref() == Some(run_id)).then_some(pid));
    helper_execs(procs).into_iter().find(|&pid| {
        let line = String::from_utf8_lossy(&cmdline(pid)).into_owned();
        line.contains(&needle) || (Some(pid) == handed && !line.contains("\"run_id\":\""))
    })
}

/// Kills the processes of the supervisor running `run_id`; the supervisor itself then reports.
/// Each round checks that it still runs `run_id`: a supervisor the agent keeps may have
/// ended it and taken the next.
pub fn kill_run(run_id: &str) -> usize {
    let Some(supervisor) = supervisor_of(&snapshot(), run_id) else {
        return 0;
    };
    kill_until_none(
        |procs| match supervisor_of(procs, run_id) == Some(supervisor) {
            true => descendants(procs, supervisor),
            false => Vec::new(),
        },
        None,
    )
}

/// Kills every process that is not adde's own and belongs to no live execution: the
/// leftovers of runs whose supervisor died, which are re-parented to PID 1. With `run_id`,
/// that run's supervisor and its processes go too (a supervisor that stopped answering).
pub fn sweep(run_id: &str) -> usize {
    let ending = supervisor_of(&snapshot(), run_id);
    let helper_is_init = is_helper_cmdline(&cmdline(1));
    kill_until_none(
        |procs| {
            let owners: Vec<u32> = helper_execs(procs)
                .into_iter()
                .filter(|&pid| Some(pid) != ending)
                .collect();
            strays(procs, &owners, helper_is_init)
        },
        None,
    )
}

/// The processes that neither adde nor a live execution owns. Owned are PID 1, the helper
/// execs in `owners` with everything they started (a run's processes stay in its
/// supervisor's tree: it is their subreaper), and, when PID 1 is Docker's init rather than
/// adde's helper (use_image_cmd), the image's command, PID 1's oldest child, with its tree.
fn strays(procs: &[Proc], owners: &[u32], helper_is_init: bool) -> Vec<u32> {
    let mut roots = owners.to_vec();
    if !helper_is_init {
        let image_command = procs.iter().filter(|p| p.ppid == 1).min_by_key(|p| p.start);
        roots.extend(image_command.map(|p| p.pid));
    }
    let mut owned: HashSet<u32> = HashSet::from([1, std::process::id()]);
    for root in roots {
        owned.insert(root);
        owned.extend(descendants(procs, root));
    }
    procs
        .iter()
        .filter(|p| !owned.contains(&p.pid))
        .map(|p| p.pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, ppid: u32, start: u64) -> Proc {
        Proc {
            pid,
            ppid,
            session: pid,
            state: 'S',
            start,
        }
    }

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let tail = "1 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0";
        let parsed = parse_stat(42, &format!("42 (a) b (c)) Z 7 {tail}")).unwrap();
        assert_eq!(parsed, proc(42, 7, 777).with_state('Z'));
        assert_eq!(parse_stat(1, "garbage"), None);
    }

    impl Proc {
        fn with_state(mut self, state: char) -> Proc {
            self.state = state;
            self
        }
    }

    #[test]
    fn strays_are_what_no_live_execution_owns() {
        // PID 1 is adde's helper; 10 is a live supervisor with its run 11 -> 12; 20 and its
        // child 21 are what a dead supervisor left (re-parented to PID 1).
        let procs = [
            proc(1, 0, 1),
            proc(10, 0, 5),
            proc(11, 10, 6),
            proc(12, 11, 7),
            proc(20, 1, 8),
            proc(21, 20, 9),
        ];
        assert_eq!(strays(&procs, &[10], true), vec![20, 21]);
        // A supervisor being ended is no owner: its run goes too.
        assert_eq!(strays(&procs, &[], true), vec![10, 11, 12, 20, 21]);
        // Under Docker's init, PID 1's oldest child is the image's command, and is kept.
        assert!(strays(&procs, &[10], false).is_empty());
        let procs = [procs.as_slice(), &[proc(30, 1, 2), proc(31, 30, 3)]].concat();
        assert_eq!(strays(&procs, &[10], false), vec![20, 21]);
    }
}
