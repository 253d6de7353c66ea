//! Starting a run's program with posix_spawn. std's `Command` falls back to fork() as soon as
//! the child needs something posix_spawn cannot express through std (here: its own session),
//! and a fork copies the supervisor's page tables only for exec to throw them away; measured
//! through `adde serve`, that fork was about a fifth of an execution's CPU inside the
//! environment. glibc's posix_spawn is a vfork with the session, signal and fd set-up done in
//! the child, so nothing is copied.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use crate::protocol::AGENT_CHILDREN_ENV;

/// A program the supervisor started: its PID, the pipes it did not hand out yet, and its exit
/// status once collected.
pub(super) struct Program {
    pid: libc::pid_t,
    status: Option<ExitStatus>,
    pub stdin: Option<fs::File>,
    pub stdout: Option<fs::File>,
    pub stderr: Option<fs::File>,
}

impl Program {
    /// Starts `program` (looked up in PATH as execvp does) with `args`, in a session and
    /// process group of its own (nothing it does reaches the supervisor, and none of its
    /// processes can pass for one of adde's, which live in PID 1's session), with the
    /// supervisor's environment minus the agent's note to its helpers, SIGPIPE at its default
    /// and no signal blocked, stdout and stderr piped, and stdin piped or /dev/null.
    /// `control`, when given, becomes its fd 3.
    pub(super) fn spawn(
        program: &str,
        args: &[&str],
        piped_stdin: bool,
        control: Option<RawFd>,
    ) -> io::Result<Program> {
        let argv: Vec<CString> = std::iter::once(program)
            .chain(args.iter().copied())
            .map(|a| c_string(a.as_bytes()))
            .collect::<io::Result<_>>()?;
        let envp: Vec<CString> = std::env::vars_os()
            .filter(|(key, _)| key != AGENT_CHILDREN_ENV)
            .map(|(key, value)| {
                let mut pair = key.as_bytes().to_vec();
                pair.push(b'=');
                pair.extend_from_slice(value.as_bytes());
                c_string(&pair)
            })
            .collect::<io::Result<_>>()?;
        let stdin = piped_stdin.then(pipe).transpose()?;
        let (stdout_read, stdout_write) = pipe()?;
        let (stderr_read, stderr_write) = pipe()?;
        // dup2 onto the same number would keep FD_CLOEXEC on some glibc versions: move a
        // socket that already is fd 3 out of the way first.
        let control = control
            .map(|fd| match fd {
                3 => dup_above(fd, 10),
                _ => dup_above(fd, 3),
            })
            .transpose()?;

        let mut actions = FileActions::new()?;
        match &stdin {
            Some((read, _)) => actions.dup2(read.as_raw_fd(), 0)?,
            None => actions.open_null(0)?,
        }
        actions.dup2(stdout_write.as_raw_fd(), 1)?;
        actions.dup2(stderr_write.as_raw_fd(), 2)?;
        if let Some(control) = &control {
            actions.dup2(control.as_raw_fd(), 3)?;
        }
        let attrs = SpawnAttrs::new()?;

        let mut pointers: Vec<*mut libc::c_char> =
            argv.iter().map(|a| a.as_ptr() as *mut _).collect();
        pointers.push(std::ptr::null_mut());
        let mut env_pointers: Vec<*mut libc::c_char> =
            envp.iter().map(|e| e.as_ptr() as *mut _).collect();
        env_pointers.push(std::ptr::null_mut());
        let mut pid: libc::pid_t = 0;
        // SAFETY: every pointer is valid for the call: NUL-terminated strings kept alive in
        // argv and envp, null-terminated arrays, initialised file actions and attributes.
        let err = unsafe {
            libc::posix_spawnp(
                &mut pid,
                argv[0].as_ptr(),
                &actions.0,
                &attrs.0,
                pointers.as_ptr(),
                env_pointers.as_ptr(),
            )
        };
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        Ok(Program {
            pid,
            status: None,
            stdin: stdin.map(|(_, write)| write.into()),
            stdout: Some(stdout_read.into()),
            stderr: Some(stderr_read.into()),
        })
    }

    pub(super) fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Its exit status, if it has exited (collected once, then remembered).
    pub(super) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        match unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) } {
            0 => Ok(None),
            -1 => Err(io::Error::last_os_error()),
            _ => {
                self.status = Some(ExitStatus::from_raw(status));
                Ok(self.status)
            }
        }
    }

    /// Kills it and collects its status (a program that is not wanted after all).
    pub(super) fn kill_and_wait(&mut self) {
        if self.status.is_some() {
            return;
        }
        let mut status = 0;
        // SAFETY: signalling and waiting for our own, not yet collected, child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, &mut status, 0);
        }
        self.status = Some(ExitStatus::from_raw(status));
    }
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{:?} holds a NUL byte", OsStr::from_bytes(bytes)),
        )
    })
}

/// A pipe whose ends close on exec (the program gets its copies through dup2).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds this process owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec copy of `fd` numbered `lowest` or above.
fn dup_above(fd: RawFd, lowest: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd or -1.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, lowest) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

fn check(err: libc::c_int) -> io::Result<()> {
    match err {
        0 => Ok(()),
        err => Err(io::Error::from_raw_os_error(err)),
    }
}

struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> io::Result<FileActions> {
        // SAFETY: init fills the zeroed struct; Drop destroys it.
        unsafe {
            let mut actions = std::mem::zeroed();
            check(libc::posix_spawn_file_actions_init(&mut actions))?;
            Ok(FileActions(actions))
        }
    }

    fn dup2(&mut self, fd: RawFd, target: RawFd) -> io::Result<()> {
        // SAFETY: initialised actions; the fds stay open until the spawn.
        check(unsafe { libc::posix_spawn_file_actions_adddup2(&mut self.0, fd, target) })
    }

    fn open_null(&mut self, target: RawFd) -> io::Result<()> {
        // SAFETY: initialised actions; a static NUL-terminated path.
        check(unsafe {
            libc::posix_spawn_file_actions_addopen(
                &mut self.0,
                target,
                c"/dev/null".as_ptr(),
                libc::O_RDONLY,
                0,
            )
        })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in new().
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// A session of its own, no signal blocked, SIGPIPE at its default (adde ignores it).
struct SpawnAttrs(libc::posix_spawnattr_t);

impl SpawnAttrs {
    fn new() -> io::Result<SpawnAttrs> {
        // SAFETY: init fills the zeroed struct (Drop destroys it); the sigsets are
        // initialised before use.
        unsafe {
            let mut attrs = SpawnAttrs(std::mem::zeroed());
            check(libc::posix_spawnattr_init(&mut attrs.0))?;
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            check(libc::posix_spawnattr_setsigmask(&mut attrs.0, &none))?;
            let mut pipe: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pipe);
            libc::sigaddset(&mut pipe, libc::SIGPIPE);
            check(libc::posix_spawnattr_setsigdefault(&mut attrs.0, &pipe))?;
            let flags = libc::POSIX_SPAWN_SETSID
                | libc::POSIX_SPAWN_SETSIGMASK as libc::c_short
                | libc::POSIX_SPAWN_SETSIGDEF as libc::c_short;
            check(libc::posix_spawnattr_setflags(&mut attrs.0, flags))?;
            Ok(attrs)
        }
    }
}

impl Drop for SpawnAttrs {
    fn drop(&mut self) {
        // SAFETY: initialised in new().
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}
