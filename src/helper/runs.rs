//! The `runs` role: a supervisor the agent keeps between runs (agent.rs), so that a run costs
//! no helper start. It supervises the runs handed to it one after another, as `run` does
//! each, for as long as it can vouch that nothing of one run reaches the next:
//!
//! - it is its runs' subreaper, so the kill at the end of a run reached every process the
//!   run started (under gVisor it is not, and ends after one run);
//! - the run had no standard input, whose bytes would share the stream where the next run's
//!   spec comes;
//! - its command line can name the run (title.rs), so that a kill finds it only while it
//!   runs that run;
//! - what a program inherits from it is as it was when it started: a run's code runs as the
//!   same user, and the kernel lets that user lower its resource limits (prlimit), its
//!   priority, CPU affinity, scheduling and I/O class, and raise its OOM score.
//!
//! Each status says whether it stays; otherwise it exits after the run.

use std::fs;

use super::procs::RunScope;
use super::title::Title;
use super::{supervise_and_report, warm};
use crate::protocol::RUNS_PLACEHOLDER;

pub fn serve() -> std::process::ExitCode {
    let subreaper = RunScope::claim().reaches_all();
    let inherited = Inherited::now();
    let workdir = std::env::current_dir();
    let mut title = Title::find(RUNS_PLACEHOLDER);
    while let Some(spec) = warm::read_spec() {
        // A folder removed since the last run fails the next, as it fails a fresh helper.
        let spec = match &workdir {
            Ok(dir) => std::env::set_current_dir(dir)
                .map_err(|e| format!("cannot start adde's helper in {}: {e}", dir.display()))
                .and(spec),
            Err(e) => Err(format!("cannot find adde's helper's folder: {e}")),
        };
        let named = match (&spec, title.as_mut()) {
            (Ok(spec), Some(title)) => title.show(&format!("\"run_id\":\"{}\"", spec.run_id)),
            _ => false,
        };
        let may_stay = subreaper
            && named
            && spec
                .as_ref()
                .is_ok_and(|spec| spec.stdin_len == 0 && !spec.background);
        let mut stays = false;
        supervise_and_report(spec, None, || {
            stays = may_stay && Inherited::now() == inherited;
            stays
        });
        if let Some(title) = title.as_mut() {
            title.show(RUNS_PLACEHOLDER);
        }
        if !stays {
            break;
        }
    }
    std::process::ExitCode::SUCCESS
}

/// What a program inherits from its supervisor and its own code may change in it from
/// outside (see the module's comment).
#[derive(Debug, PartialEq)]
pub(super) struct Inherited {
    limits: Vec<(u64, u64)>,
    nice: i32,
    affinity: Vec<u64>,
    scheduler: (i32, i32),
    io_priority: i64,
    oom_score_adj: Option<String>,
}

/// The resource limits there are (RLIMIT_CPU .. RLIMIT_RTTIME).
const LIMITS: u32 = 16;

impl Inherited {
    /// All of it but the CPU affinity, which the engine itself changes when an operator
    /// updates the container's cpuset: what the agent (PID 1) checks, for the life of the
    /// environment.
    pub(super) fn now_but_affinity() -> Inherited {
        Inherited::read(false)
    }

    /// All of it: what a kept supervisor checks after each run.
    pub(super) fn now() -> Inherited {
        Inherited::read(true)
    }

    fn read(with_affinity: bool) -> Inherited {
        let limits = (0..LIMITS)
            .map(|resource| {
                // SAFETY: a zeroed rlimit is plain data, filled in by getrlimit.
                let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
                // SAFETY: a valid resource number and a valid pointer.
                unsafe { libc::getrlimit(resource as _, &mut limit) };
                (limit.rlim_cur, limit.rlim_max)
            })
            .collect();
        // SAFETY: plain syscalls on the calling process, with valid pointers where asked.
        unsafe {
            // -1 is also a valid priority: errno is not worth telling it from a failure here,
            // where either way the answer must be the same as at the start.
            let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
            let affinity = match with_affinity {
                true => cpu_affinity(),
                false => Vec::new(),
            };
            let mut param: libc::sched_param = std::mem::zeroed();
            libc::sched_getparam(0, &mut param);
            let scheduler = (libc::sched_getscheduler(0), param.sched_priority);
            // IOPRIO_WHO_PROCESS, this process.
            let io_priority = libc::syscall(libc::SYS_ioprio_get, 1, 0);
            Inherited {
                limits,
                nice,
                affinity,
                scheduler,
                io_priority,
                oom_score_adj: fs::read_to_string("/proc/self/oom_score_adj").ok(),
            }
        }
    }
}

/// The CPUs this process may run on, as bit masks of 64.
fn cpu_affinity() -> Vec<u64> {
    // SAFETY: a zeroed cpu_set_t is plain data, filled in by sched_getaffinity on the
    // calling process; CPU_ISSET reads it within CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (0..libc::CPU_SETSIZE as usize)
            .step_by(64)
            .map(|first| {
                (0..64).fold(0u64, |bits, i| {
                    bits | (u64::from(libc::CPU_ISSET(first + i, &set)) << i)
                })
            })
            .collect()
    }
}
