//! The helper's file roles: what the archive API cannot do (tmpfs mounts are invisible to
//! it, and it writes as root). They run as the environment's user, and touch only regular
//! files and folders: a FIFO, a socket or a device is refused, never opened in a way that
//! could block (a FIFO with no writer blocks open(2) and read(2) forever).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::protocol::{FileHead, ListEntry, Listing};

/// The entries under `root` (or `root` itself when it is not a folder), sorted by name.
pub fn list(root: &Path, recursive: bool) -> Listing {
    let Ok(meta) = fs::symlink_metadata(root) else {
        return Listing::NotFound;
    };
    let mut entries = Vec::new();
    if meta.is_dir() {
        walk(root, root, recursive, &mut entries);
    } else {
        let name = root
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        entries.push(list_entry(root, name, &meta));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Listing::Entries(entries)
}

fn walk(root: &Path, dir: &Path, recursive: bool, entries: &mut Vec<ListEntry>) {
    let Ok(children) = fs::read_dir(dir) else {
        return;
    };
    for child in children.flatten() {
        let path = child.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let name = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        entries.push(list_entry(&path, name, &meta));
        if recursive && meta.is_dir() {
            walk(root, &path, recursive, entries);
        }
    }
}

fn list_entry(path: &Path, name: String, meta: &fs::Metadata) -> ListEntry {
    use std::os::unix::fs::MetadataExt;
    let kind = if meta.file_type().is_symlink() {
        "symlink"
    } else if meta.is_dir() {
        "dir"
    } else if meta.is_file() {
        "file"
    } else {
        "other"
    };
    let modified = chrono::DateTime::from_timestamp(meta.mtime(), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    ListEntry {
        name,
        path: path.display().to_string(),
        kind: kind.to_string(),
        size: meta.len(),
        mode: format!("{:04o}", meta.mode() & 0o7777),
        modified,
    }
}

/// What a path that adde will not read or write is: neither a regular file nor a folder.
fn special_kind(meta: &fs::Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    Some(if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else {
        return None;
    })
}

/// Why a path was not opened.
enum Refusal {
    /// Not a regular file or a folder: its kind.
    Special(&'static str),
    Io(io::Error),
}

impl From<Refusal> for io::Error {
    fn from(refusal: Refusal) -> io::Error {
        match refusal {
            Refusal::Special(kind) => {
                io::Error::other(format!("it is a {kind}, not a regular file"))
            }
            Refusal::Io(e) => e,
        }
    }
}

/// Opens `path` with `options` plus O_NONBLOCK, so that nothing blocks, and keeps it only if
/// it is a regular file or a folder (checked on what was opened, not before).
fn open_plain(
    path: &Path,
    options: &mut fs::OpenOptions,
) -> Result<(fs::File, fs::Metadata), Refusal> {
    let file = options
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            // A socket, or a FIFO opened for writing with no reader, fails with ENXIO.
            match fs::metadata(path).ok().as_ref().and_then(special_kind) {
                Some(kind) => Refusal::Special(kind),
                None => Refusal::Io(e),
            }
        })?;
    let meta = file.metadata().map_err(Refusal::Io)?;
    match special_kind(&meta) {
        Some(kind) => Err(Refusal::Special(kind)),
        None => Ok((file, meta)),
    }
}

/// Prints a `FileHead` line, then up to `cap` bytes of the file.
pub fn read_head_and_bytes(path: &Path, cap: u64, out: &mut impl Write) {
    let (head, file) = match open_plain(path, fs::OpenOptions::new().read(true)) {
        Ok((_, meta)) if meta.is_dir() => (FileHead::Dir, None),
        Ok((file, meta)) => (FileHead::File { size: meta.len() }, Some(file)),
        Err(Refusal::Special(kind)) => (FileHead::NotRegular { kind: kind.into() }, None),
        Err(Refusal::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            (FileHead::Missing, None)
        }
        Err(Refusal::Io(e)) => (
            FileHead::Unreadable {
                message: e.to_string(),
            },
            None,
        ),
    };
    let _ = writeln!(out, "{}", serde_json::to_string(&head).unwrap_or_default());
    if let Some(file) = file {
        let _ = io::copy(&mut file.take(cap), out);
    }
}

/// Writes `content` to the regular file `path`, creating it and its folders, as whoever
/// runs it, and sets `mode` when given.
pub fn write_plain(path: &Path, content: &mut impl Read, mode: Option<u32>) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let (mut file, _) = open_plain(path, fs::OpenOptions::new().write(true).create(true))?;
    file.set_len(0)?;
    io::copy(content, &mut file)?;
    if let Some(mode) = mode {
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Writes stdin to `path` with octal `mode`.
pub fn write_stdin_to(path: &Path, mode: &str) -> io::Result<()> {
    let mode = u32::from_str_radix(mode, 8).map_err(|_| io::Error::other("bad mode"))?;
    write_plain(path, &mut io::stdin().lock(), Some(mode))
}

/// Gives /workspace (and what the image put there) to `user`: "uid", "uid:gid", or names
/// from the image's /etc/passwd and /etc/group. Runs as root with only CAP_CHOWN.
pub fn chown_workspace(user: &str) -> Result<(), String> {
    let (name, group) = user
        .split_once(':')
        .map_or((user, None), |(u, g)| (u, Some(g)));
    let lookup = |file: &str, key: &str| -> Option<(u32, Option<u32>)> {
        let text = fs::read_to_string(file).ok()?;
        text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.first() != Some(&key) {
                return None;
            }
            Some((
                fields.get(2)?.parse().ok()?,
                fields.get(3).and_then(|g| g.parse().ok()),
            ))
        })
    };
    let (uid, primary) = match name.parse::<u32>() {
        Ok(uid) => (uid, None),
        Err(_) => lookup("/etc/passwd", name)
            .ok_or_else(|| format!("user {name:?} is not in the image's /etc/passwd"))?,
    };
    let gid = match group {
        None => primary.unwrap_or(uid),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                lookup("/etc/group", g)
                    .ok_or_else(|| format!("group {g:?} is not in the image's /etc/group"))?
                    .0
            }
        },
    };
    fn chown_all(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
        if fs::symlink_metadata(path)?.is_dir() {
            for entry in fs::read_dir(path)? {
                chown_all(&entry?.path(), uid, gid)?;
            }
        }
        Ok(())
    }
    chown_all(Path::new(crate::protocol::WORKSPACE), uid, gid)
        .map_err(|e| format!("cannot give /workspace to {user}: {e}"))
}
