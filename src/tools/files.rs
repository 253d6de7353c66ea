//! Files in and out of an environment: write_file and read_file through the archive API,
//! list_files through the helper, export_files streaming to a host folder. No shell.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, HelperTarget};
use crate::error::{Error, Result};
use crate::protocol::{ListEntry, Listing, Role, LIST_RECURSIVE, WORKSPACE, WRITE_OK};
use crate::refs;

use super::input::{container_path, in_range, required};

const DEFAULT_READ_CAP: u64 = 1024 * 1024;
/// Most bytes read_file returns at once.
const MAX_READ_CAP: u64 = 64 * 1024 * 1024;
/// How long one of the helper's file operations may take.
const HELPER_OP_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Most symlinks read_file follows before it gives up (as the kernel's ELOOP).
const MAX_SYMLINK_HOPS: usize = 40;

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Text, UTF-8 (the default).
    #[default]
    Utf8,
    /// Bytes, base64.
    Base64,
}

/// An environment adde made, and what decides how its files are reached.
struct Target {
    id: String,
    helper: HelperTarget,
    /// The user it runs as ("uid[:gid]" or a name), when it is not root.
    user: Option<String>,
    /// Its tmpfs mount points, e.g. /tmp on a read-only rootfs.
    tmpfs: Vec<String>,
}

impl Target {
    async fn find(engine: &Engine, container: &str) -> Result<Target> {
        let container = refs::container_id("container_id", container)?;
        let info = engine.inspect_managed(&container).await?;
        let helper = info.helper_target();
        let user = info
            .user
            .filter(|u| !matches!(u.as_str(), "root" | "0" | "0:0"));
        Ok(Target {
            helper,
            id: info.id,
            user,
            tmpfs: info.tmpfs,
        })
    }

    /// Whether a file is reached through adde's helper inside the environment rather than the
    /// archive API: always when the environment has an agent (a round trip of a millisecond,
    /// against tens for the archive API), and where the archive API cannot go.
    fn through_helper(&self, path: &str, writing: bool) -> bool {
        self.helper.agent || self.on_tmpfs(path) || (writing && self.user.is_some())
    }

    /// The archive API works on the container's filesystem as the engine mounts it: it
    /// cannot see tmpfs mounts (they live in the container alone) and it writes as root.
    /// Those cases go through the helper, run in the container as its own user.
    fn on_tmpfs(&self, path: &str) -> bool {
        self.tmpfs
            .iter()
            .any(|t| path == t || path.starts_with(&format!("{t}/")))
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileInput {
    pub container_id: String,
    /// Where to write: absolute, or relative to /workspace. Folders are created.
    pub path: String,
    pub content: String,
    /// "utf8" (default) or "base64".
    #[serde(default)]
    pub encoding: Encoding,
    /// Permission bits in octal, e.g. "0755"; default "0644".
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Serialize)]
pub struct WriteFileOutput {
    pub ok: bool,
    pub path: String,
    pub bytes: u64,
}

pub async fn write_file(engine: &Engine, input: WriteFileInput) -> Result<WriteFileOutput> {
    let path = container_path("path", &input.path)?;
    if path == "/" {
        return Err(Error::invalid("path", "path names no file"));
    }
    let bytes = decode(&input.content, input.encoding, "content")?;
    let mode = match input.mode.as_deref().map(str::trim) {
        None | Some("") => 0o644,
        Some(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| {
                Error::invalid(
                    "mode",
                    format!("mode {text:?} is not octal permission bits like \"0644\""),
                )
            })?,
    };
    let target = Target::find(engine, &input.container_id).await?;
    let size = bytes.len() as u64;
    if target.through_helper(&path, true) {
        let mode = format!("{mode:o}");
        let (stdout, stderr) = engine
            .run_helper_collect(
                &target.helper,
                Role::Write,
                &[&path, &mode],
                bytes,
                HELPER_OP_LIMIT,
            )
            .await?;
        if stdout.trim_ascii() != WRITE_OK.as_bytes() {
            return Err(Error::Helper(format!(
                "cannot write {path}: {}",
                String::from_utf8_lossy(&stderr).trim()
            )));
        }
    } else {
        upload(engine, &target.id, &path, &bytes, mode).await?;
    }
    Ok(WriteFileOutput {
        ok: true,
        path,
        bytes: size,
    })
}

/// Writes a file through the archive API, unpacked at the deepest folder that exists: a
/// read-only rootfs refuses uploads addressed to it even when the file lands in a volume.
async fn upload(engine: &Engine, id: &str, path: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let mut base = Path::new(path)
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    while base != Path::new("/")
        && engine
            .path_size(id, &base.to_string_lossy())
            .await?
            .is_none()
    {
        base = base.parent().unwrap_or(Path::new("/")).to_path_buf();
    }
    let relative = Path::new(path)
        .strip_prefix(&base)
        .unwrap_or(Path::new(path));
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
    let mut builder = tar::Builder::new(Vec::with_capacity(bytes.len() + 1024));
    let tar = builder
        .append_data(&mut header, relative, bytes)
        .and_then(|()| builder.into_inner())
        .map_err(|e| Error::Internal(format!("packing {path}: {e}")))?;
    engine
        .upload(id, &base.to_string_lossy(), tar)
        .await
        .map_err(|e| match e {
            Error::Engine { status, message } => Error::Engine {
                status,
                message: format!("cannot write {path}: {message}"),
            },
            other => other,
        })
}

fn decode(content: &str, encoding: Encoding, field: &'static str) -> Result<Vec<u8>> {
    match encoding {
        Encoding::Utf8 => Ok(content.as_bytes().to_vec()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(content.trim())
            .map_err(|e| Error::invalid(field, format!("{field} is not valid base64: {e}"))),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileInput {
    pub container_id: String,
    /// The file: absolute, or relative to /workspace.
    pub path: String,
    /// First line to return (0-based), for text.
    #[serde(default)]
    pub offset: usize,
    /// How many lines to return, for text; all when absent.
    #[serde(default)]
    pub line_count: Option<usize>,
    /// Most bytes read from the file (default 1 MiB).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// "utf8" (default) pages by lines; "base64" returns the bytes.
    #[serde(default)]
    pub encoding: Encoding,
}

#[derive(Serialize)]
pub struct ReadFileOutput {
    pub path: String,
    pub content: String,
    pub encoding: &'static str,
    /// The file's size in bytes.
    pub size: u64,
    /// For text: the first line returned, how many, and how many lines were read.
    pub offset: usize,
    pub line_count: usize,
    pub total_lines: usize,
    /// Whether more of the file remains (past max_bytes or past the lines returned).
    pub has_more: bool,
}

pub async fn read_file(engine: &Engine, input: ReadFileInput) -> Result<ReadFileOutput> {
    let path = container_path("path", &input.path)?;
    let cap = input.max_bytes.unwrap_or(DEFAULT_READ_CAP);
    in_range("max_bytes", cap as f64, 1.0, MAX_READ_CAP as f64)?;
    let target = Target::find(engine, &input.container_id).await?;
    let (size, bytes) = if target.through_helper(&path, false) {
        read_through_helper(engine, &target.helper, &path, cap).await?
    } else {
        read_through_archive(engine, &target.id, &path, cap).await?
    };
    let cut = (bytes.len() as u64) < size;
    match input.encoding {
        Encoding::Base64 => Ok(ReadFileOutput {
            content: base64::engine::general_purpose::STANDARD.encode(&bytes),
            encoding: "base64",
            size,
            offset: 0,
            line_count: 0,
            total_lines: 0,
            has_more: cut,
            path,
        }),
        Encoding::Utf8 => {
            let text = String::from_utf8(bytes).map_err(|_| Error::NotText(path.clone()))?;
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let start = input.offset.min(lines.len());
            let end = input
                .line_count
                .map_or(lines.len(), |n| (start + n).min(lines.len()));
            Ok(ReadFileOutput {
                content: lines[start..end].concat(),
                encoding: "utf8",
                size,
                offset: start,
                line_count: end - start,
                total_lines: lines.len(),
                has_more: cut || end < lines.len(),
                path,
            })
        }
    }
}

/// A file's size and first `cap` bytes, read by the helper inside the container.
async fn read_through_helper(
    engine: &Engine,
    target: &HelperTarget,
    path: &str,
    cap: u64,
) -> Result<(u64, Vec<u8>)> {
    let cap = cap.to_string();
    let (stdout, stderr) = engine
        .run_helper_collect(
            target,
            Role::Read,
            &[path, &cap],
            Vec::new(),
            HELPER_OP_LIMIT,
        )
        .await?;
    let newline = stdout
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(stdout.len());
    let head: crate::protocol::FileHead =
        serde_json::from_slice(&stdout[..newline]).map_err(|_| {
            Error::Helper(format!(
                "cannot read {path}: {}",
                String::from_utf8_lossy(&stderr).trim()
            ))
        })?;
    match head {
        crate::protocol::FileHead::Missing => Err(Error::FileNotFound(path.to_string())),
        crate::protocol::FileHead::Dir => Err(Error::IsADirectory(path.to_string())),
        crate::protocol::FileHead::NotRegular { kind } => Err(Error::NotRegularFile {
            path: path.to_string(),
            kind,
        }),
        crate::protocol::FileHead::Unreadable { message } => {
            Err(Error::Helper(format!("cannot read {path}: {message}")))
        }
        crate::protocol::FileHead::File { size } => {
            Ok((size, stdout.get(newline + 1..).unwrap_or_default().to_vec()))
        }
    }
}

/// A file's size and first `cap` bytes through the archive API, following symlinks as the
/// kernel would (the archive API returns the link itself).
async fn read_through_archive(
    engine: &Engine,
    id: &str,
    path: &str,
    cap: u64,
) -> Result<(u64, Vec<u8>)> {
    let mut current = path.to_string();
    for _ in 0..MAX_SYMLINK_HOPS {
        let stream = engine
            .download(id, &current)
            .await?
            .ok_or_else(|| Error::FileNotFound(path.to_string()))?;
        match read_first_entry(stream, path, cap).await? {
            Entry::File { size, bytes } => return Ok((size, bytes)),
            Entry::Symlink(target) => {
                let parent = Path::new(&current).parent().unwrap_or(Path::new("/"));
                current = container_path("path", &parent.join(target).to_string_lossy())?;
            }
        }
    }
    Err(Error::invalid(
        "path",
        format!("{path}: too many levels of symbolic links"),
    ))
}

/// What the first entry of an archive holds.
enum Entry {
    File { size: u64, bytes: Vec<u8> },
    Symlink(PathBuf),
}

/// The first entry of a tar stream: its size and up to `cap` bytes, or where it links to.
/// A folder is an error.
async fn read_first_entry(
    mut stream: crate::engine::ByteStream,
    path: &str,
    cap: u64,
) -> Result<Entry> {
    // Enough of the stream for the header and `cap` bytes; the rest is never fetched.
    let mut buf = Vec::new();
    while (buf.len() as u64) < cap + 1024 {
        match stream.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk?),
            None => break,
        }
    }
    if buf.len() < 512 {
        return Err(Error::Helper(format!(
            "{path}: the engine sent no archive entry"
        )));
    }
    let header = tar::Header::from_byte_slice(&buf[..512]);
    let kind = header.entry_type();
    if kind.is_dir() {
        return Err(Error::IsADirectory(path.to_string()));
    }
    let special = if kind.is_fifo() {
        Some("FIFO")
    } else if kind.is_character_special() {
        Some("character device")
    } else if kind.is_block_special() {
        Some("block device")
    } else {
        None
    };
    if let Some(kind) = special {
        return Err(Error::NotRegularFile {
            path: path.to_string(),
            kind: kind.to_string(),
        });
    }
    if kind.is_symlink() {
        let target = header
            .link_name()
            .ok()
            .flatten()
            .ok_or_else(|| Error::Helper(format!("{path}: a symlink with no target")))?;
        return Ok(Entry::Symlink(target.into_owned()));
    }
    let size = header
        .size()
        .map_err(|e| Error::Helper(format!("{path}: unreadable archive header: {e}")))?;
    let take = size.min(cap) as usize;
    let bytes = buf.get(512..512 + take).unwrap_or_default().to_vec();
    Ok(Entry::File { size, bytes })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFilesInput {
    pub container_id: String,
    /// Folder (or file) to list: absolute, or relative to /workspace; default /workspace.
    #[serde(default)]
    pub path: Option<String>,
    /// List sub-folders too.
    #[serde(default)]
    pub recursive: bool,
}

#[derive(Serialize)]
pub struct ListFilesOutput {
    pub path: String,
    pub entries: Vec<ListEntry>,
}

pub async fn list_files(engine: &Engine, input: ListFilesInput) -> Result<ListFilesOutput> {
    let path = container_path("path", input.path.as_deref().unwrap_or(WORKSPACE))?;
    let target = Target::find(engine, &input.container_id).await?;
    let recursive = if input.recursive { LIST_RECURSIVE } else { "" };
    let (out, _) = engine
        .run_helper_collect(
            &target.helper,
            Role::List,
            &[&path, recursive],
            Vec::new(),
            HELPER_OP_LIMIT,
        )
        .await?;
    let listing: Listing = serde_json::from_slice(&out).map_err(|e| {
        Error::Helper(format!(
            "unreadable listing ({e}): {}",
            String::from_utf8_lossy(&out).trim()
        ))
    })?;
    match listing {
        Listing::Entries(entries) => Ok(ListFilesOutput { path, entries }),
        Listing::NotFound => Err(Error::FileNotFound(path)),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportInput {
    pub container_id: String,
    /// Files or folders to copy out: absolute, or relative to /workspace.
    pub paths: Vec<String>,
    /// Host folder to copy them into (created if missing); nothing is written outside it.
    pub dest: String,
}

#[derive(Serialize)]
pub struct ExportOutput {
    pub ok: bool,
    pub dest: String,
    /// What was written, relative to dest.
    pub files: Vec<String>,
    pub bytes: u64,
    /// Entries left out because they would have pointed or landed outside dest.
    pub skipped: Vec<String>,
}

pub async fn export_files(engine: &Engine, input: ExportInput) -> Result<ExportOutput> {
    if input.paths.is_empty() {
        return Err(Error::invalid("paths", "give at least one path"));
    }
    let paths = input
        .paths
        .iter()
        .map(|p| container_path("paths", p))
        .collect::<Result<Vec<_>>>()?;
    let dest = required("dest", "dest", &input.dest)?;
    let dest = PathBuf::from(dest);
    std::fs::create_dir_all(&dest).map_err(|e| Error::state(&dest, e))?;
    let dest = dest.canonicalize().map_err(|e| Error::state(&dest, e))?;
    let id = Target::find(engine, &input.container_id).await?.id;
    let mut out = ExportOutput {
        ok: true,
        dest: dest.display().to_string(),
        files: Vec::new(),
        bytes: 0,
        skipped: Vec::new(),
    };
    for path in paths {
        let mut stream = engine
            .download(&id, &path)
            .await?
            .ok_or_else(|| Error::FileNotFound(path.clone()))?;
        // The tar is unpacked on a blocking thread as its chunks arrive, never whole.
        let (sender, receiver) = std::sync::mpsc::sync_channel::<bytes::Bytes>(16);
        let target = dest.clone();
        let unpack =
            tokio::task::spawn_blocking(move || unpack_inside(ChunkReader::new(receiver), &target));
        while let Some(chunk) = stream.next().await {
            if sender.send(chunk?).is_err() {
                break;
            }
        }
        drop(sender);
        let report = unpack
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::state(&dest, e))?;
        out.files.extend(report.files);
        out.bytes += report.bytes;
        out.skipped.extend(report.skipped);
    }
    Ok(out)
}

#[derive(Default)]
struct Unpacked {
    files: Vec<String>,
    bytes: u64,
    skipped: Vec<String>,
}

/// Unpacks a tar under `dest`: entries whose path or link target would leave it are skipped.
fn unpack_inside(reader: impl Read, dest: &Path) -> std::io::Result<Unpacked> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_overwrite(true);
    let mut report = Unpacked::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let link_escapes = entry.link_name()?.is_some_and(|target| {
            target.is_absolute() || crate::context::escapes(Path::new(&name), &target)
        });
        if link_escapes {
            report.skipped.push(name);
            continue;
        }
        let size = entry.header().size().unwrap_or(0);
        // unpack_in refuses paths with `..` or that resolve outside dest (false: skipped).
        if entry.unpack_in(dest)? {
            if entry.header().entry_type().is_file() {
                report.bytes += size;
                report.files.push(name);
            }
        } else {
            report.skipped.push(name);
        }
    }
    Ok(report)
}

/// A blocking `Read` over chunks sent from the async side.
struct ChunkReader {
    receiver: std::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl ChunkReader {
    fn new(receiver: std::sync::mpsc::Receiver<bytes::Bytes>) -> Self {
        ChunkReader {
            receiver,
            current: bytes::Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.recv() {
                Ok(chunk) => self.current = chunk,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacking_never_leaves_dest() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, data).unwrap();
        };
        add("out/ok.txt", b"fine");
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "out/evil", "/etc")
            .unwrap();
        let mut raw = builder.into_inner().unwrap();
        // A hand-made entry named ../escape.txt (tar::Builder refuses to write one).
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..14].copy_from_slice(b"../escape.txt\0");
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        let end = raw.len() - 1024;
        raw.truncate(end);
        raw.extend_from_slice(header.as_bytes());
        raw.extend_from_slice(&[b'x'; 512]);
        raw.extend_from_slice(&[0; 1024]);

        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let report = unpack_inside(raw.as_slice(), &dest).unwrap();
        assert_eq!(report.files, vec!["out/ok.txt".to_string()]);
        assert_eq!(std::fs::read(dest.join("out/ok.txt")).unwrap(), b"fine");
        assert!(!dest.join("out/evil").exists());
        assert!(!dir.path().join("escape.txt").exists());
        assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);
    }
}
