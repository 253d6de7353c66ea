//! Warm Python runs (the host sets [`RunSpec::warm`] unless `ADDE_WARM_PYTHON=off`).
//! Python's own start-up dominates a small run, so the agent keeps one spare supervisor
//! (role `spare`) that has already started Python with adde's driver (warm_driver.py), in the
//! environment and folder of the last warm run. A warm run that fits is handed to it: the
//! spare reads the run's spec on its stdin and supervises it exactly as `run` does, and the
//! driver runs the file as `python3 FILE` would. The interpreter is the supervisor's own
//! child, started with the same pipes, session and environment as a cold run's, so the
//! deadline kill, the sweep and the caps hold unchanged; each interpreter serves one run
//! only, so nothing carries over. When the run ends the agent starts the next spare.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::agent::{helper_command, spec_message, Children};
use super::find_program;
use super::spawn::Program;
use crate::protocol::{AgentStart, Role, RunSpec};

const DRIVER: &str = include_str!("warm_driver.py");
/// The interpreters a `.py` file is run with, in the order the host lists them.
const PYTHONS: [&str; 2] = ["python3", "python"];
/// Largest run spec the spare takes.
const MAX_SPEC: u32 = 1024 * 1024;

/// A Python interpreter started ahead of its run, waiting in the driver for the file to run.
pub(super) struct WarmPython {
    child: Program,
    control: UnixStream,
    program: &'static str,
}

impl WarmPython {
    /// Starts the image's Python with the driver, as a cold run would start it (same pipes,
    /// own session), plus the driver's end of a socketpair on fd 3.
    pub(super) fn start() -> Option<WarmPython> {
        let program = PYTHONS.into_iter().find(|p| find_program(p).is_some())?;
        let (control, theirs) = UnixStream::pair().ok()?;
        let fd = theirs.as_raw_fd();
        // Without its comments and blank lines: the command line shows in process listings.
        let driver: Vec<&str> = DRIVER
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .collect();
        let driver = driver.join("\n");
        let child = Program::spawn(program, &["-c", &driver], false, Some(fd)).ok()?;
        Some(WarmPython {
            child,
            control,
            program,
        })
    }

    /// Has the driver run `argv` (`[PROGRAM, FILE]`), when this interpreter is the one the run
    /// would start and is still alive; otherwise it is ended and the run is started cold.
    pub(super) fn run(mut self, argv: &[String]) -> Option<Program> {
        let fits = matches!(argv, [program, _] if program == self.program);
        let mut message = self.program.as_bytes().to_vec();
        message.push(0);
        message.extend_from_slice(argv.last().map_or(&[][..], |f| f.as_bytes()));
        // A dead driver's end is closed: the write fails (SIGPIPE is ignored in adde).
        let handed = fits
            && matches!(self.child.try_wait(), Ok(None))
            && self.control.write_all(&message).is_ok()
            && self.control.shutdown(std::net::Shutdown::Write).is_ok();
        if handed {
            return Some(self.child);
        }
        self.child.kill_and_wait();
        None
    }
}

/// The spare's start: the run spec, length-prefixed, read from stdin before the run's own
/// input. None when the agent closed the spare's stdin instead (it is no longer wanted).
pub(super) fn read_spec() -> Option<Result<RunSpec, String>> {
    let mut stdin = std::io::stdin().lock();
    let mut len = [0u8; 4];
    stdin.read_exact(&mut len).ok()?;
    let len = u32::from_be_bytes(len);
    if len > MAX_SPEC {
        return Some(Err(format!("a run spec of {len} bytes")));
    }
    let mut spec = vec![0u8; len as usize];
    if let Err(e) = stdin.read_exact(&mut spec) {
        return Some(Err(format!("the run spec did not arrive: {e}")));
    }
    Some(serde_json::from_slice(&spec).map_err(|e| format!("bad run spec: {e}")))
}

/// The spare, as the agent keeps it: started for the environment and folder of the last
/// warm run.
struct Spare {
    env: Vec<String>,
    workdir: String,
    child: Child,
}

impl Spare {
    /// Whether it is alive and was started for runs like `start`.
    fn serves(&mut self, start: &AgentStart) -> bool {
        self.env == start.env
            && self.workdir == start.workdir
            && matches!(self.child.try_wait(), Ok(None))
    }
}

/// The agent's spare supervisor (at most one), shared with the threads that see runs end.
#[derive(Clone, Default)]
pub(super) struct Spares(Arc<Mutex<Option<Spare>>>);

impl Spares {
    /// The spare, with the run's spec already on its stdin, when it was started for this
    /// run's environment and folder and is alive. A spare that does not fit is let go.
    /// The agent names `run_id` as the spare's run, so that a kill finds it.
    pub(super) fn take(
        &self,
        start: &AgentStart,
        run_id: String,
        children: &Children,
    ) -> Option<Child> {
        let mut spare = self.0.lock().ok()?.take()?;
        if !spare.serves(start) {
            let_go(spare, children);
            return None;
        }
        let message = spec_message(start.args.first().map_or("", String::as_str));
        let handed = spare
            .child
            .stdin
            .as_mut()
            .is_some_and(|stdin| stdin.write_all(&message).is_ok());
        if !handed {
            let_go(spare, children);
            return None;
        }
        children.serving(spare.child.id(), run_id);
        Some(spare.child)
    }

    /// Starts a spare for runs like `start`, in place of the one waiting, unless that one
    /// already fits (concurrent warm runs end one after another).
    pub(super) fn prime(&self, start: &AgentStart, children: &Children) {
        if let Ok(mut slot) = self.0.lock() {
            if slot.as_mut().is_some_and(|spare| spare.serves(start)) {
                return;
            }
        }
        let command = helper_command(Role::Spare, &[], &start.env, &start.workdir, children);
        let Ok(child) = spawn_piped(command) else {
            return;
        };
        children.update(child.id(), true);
        let spare = Spare {
            env: start.env.clone(),
            workdir: start.workdir.clone(),
            child,
        };
        let Ok(mut slot) = self.0.lock() else { return };
        if let Some(old) = slot.replace(spare) {
            let_go(old, children);
        }
    }
}

/// Starts a helper with its stdin, stdout and stderr piped to the agent.
pub(super) fn spawn_piped(mut command: Command) -> std::io::Result<Child> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// Ends a spare that will not be used: with its stdin closed before a spec, it ends its
/// interpreter and exits (PID 1 reaps it).
fn let_go(spare: Spare, children: &Children) {
    children.update(spare.child.id(), false);
    drop(spare.child);
}
