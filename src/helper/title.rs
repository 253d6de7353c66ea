//! A process's own command line, rewritten in place (as setproctitle does): a supervisor the
//! agent keeps between runs names the run it supervises there, where `kill RUN_ID` and
//! `sweep RUN_ID` look for it (procs.rs), and only while it supervises it.

use std::fs;

/// The last argument of this process's command line, which it can overwrite.
pub struct Title {
    /// Where the argument's bytes are, and how many there are (its NUL not included).
    at: *mut u8,
    room: usize,
}

impl Title {
    /// The last argument, when it is `placeholder` (the room there is).
    pub fn find(placeholder: &str) -> Option<Title> {
        let stat = fs::read_to_string("/proc/self/stat").ok()?;
        // arg_start and arg_end are fields 48 and 49 of proc(5)'s stat; the split starts at
        // field 3, after the command name (which may hold spaces).
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        let start: usize = fields.get(45)?.parse().ok()?;
        let end: usize = fields.get(46)?.parse().ok()?;
        let room = placeholder.len();
        if end < start + room + 1 {
            return None;
        }
        let at = (end - room - 1) as *mut u8;
        // SAFETY: [start, end) is this process's argument area, as the kernel reports it:
        // the argv strings exec placed on the main thread's stack, mapped and writable for
        // the life of the process.
        let last = unsafe { std::slice::from_raw_parts(at, room + 1) };
        (last[..room] == *placeholder.as_bytes() && last[room] == 0).then_some(Title { at, room })
    }

    /// Shows `text` as the last argument (NUL-padded), when it fits.
    pub fn show(&mut self, text: &str) -> bool {
        if text.len() > self.room || text.contains('\0') {
            return false;
        }
        // SAFETY: `at` holds `room` bytes of this process's own argument area (see `find`);
        // nothing else in adde reads it after start-up (main copied its arguments).
        let slot = unsafe { std::slice::from_raw_parts_mut(self.at, self.room) };
        slot.fill(0);
        slot[..text.len()].copy_from_slice(text.as_bytes());
        true
    }
}
