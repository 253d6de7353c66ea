//! Build contexts on the client side: `.dockerignore` matching (Docker's rules: patterns
//! anchored at the root, `*`, `?`, `[...]`, `**`, `!` exceptions, last match wins), the walk
//! that refuses symlinks escaping the context and contexts over a size cap, and the tar that
//! is streamed to the engine in chunks rather than held in memory.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, Result};

/// Parsed `.dockerignore` rules.
#[derive(Debug, Default)]
pub struct Ignore {
    /// (is an exception, pattern components)
    rules: Vec<(bool, Vec<String>)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|line| {
                let (exception, pattern) = match line.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, line),
                };
                let parts: Vec<String> = crate::paths::lexical_parts(pattern)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                (!parts.is_empty()).then_some((exception, parts))
            })
            .collect();
        Ignore { rules }
    }

    /// Whether a path (relative, '/'-separated) is left out: the last rule that matches the
    /// path or one of its parent folders decides.
    pub fn excluded(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut excluded = false;
        for (exception, pattern) in &self.rules {
            let hit = (1..=parts.len()).any(|n| match_parts(pattern, &parts[..n]));
            if hit {
                excluded = !exception;
            }
        }
        excluded
    }

    fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(exception, _)| *exception)
    }
}

fn match_parts(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_parts(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, path_rest)) => {
                match_name(first.as_bytes(), name.as_bytes()) && match_parts(rest, path_rest)
            }
            None => false,
        },
    }
}

/// One path component against a glob: `*`, `?`, `[set]`, `[!set]`/`[^set]`, `\` escapes.
fn match_name(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| match_name(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && match_name(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|&c| c == b']').map(|p| p + 1) else {
                return name.first() == Some(&b'[') && match_name(rest, &name[1..]);
            };
            let Some(&c) = name.first() else { return false };
            let (negate, set) = match rest[0] {
                b'!' | b'^' => (true, &rest[1..close]),
                _ => (false, &rest[..close]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && match_name(&rest[close + 1..], &name[1..])
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            name.first() == Some(&rest[0]) && match_name(&rest[1..], &name[1..])
        }
        Some((&p, rest)) => name.first() == Some(&p) && match_name(rest, &name[1..]),
    }
}

pub enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
}

pub struct Entry {
    /// Path inside the context, '/'-separated.
    pub name: String,
    pub path: PathBuf,
    pub kind: Kind,
}

/// What goes to the engine: every entry `.dockerignore` keeps, plus the files the builder
/// always needs (the Dockerfile and `.dockerignore` itself).
pub struct Walk {
    pub entries: Vec<Entry>,
    pub bytes: u64,
}

pub fn walk(root: &Path, always: &[&str], max_bytes: u64) -> Result<Walk> {
    let ignore = match resolve_inside(root, ".dockerignore")?.map(fs::read_to_string) {
        Some(Ok(text)) => Ignore::parse(&text),
        _ => Ignore::default(),
    };
    let mut walk = Walk {
        entries: Vec::new(),
        bytes: 0,
    };
    visit(root, root, &ignore, always, max_bytes, &mut walk)?;
    Ok(walk)
}

fn visit(
    root: &Path,
    dir: &Path,
    ignore: &Ignore,
    always: &[&str],
    max: u64,
    walk: &mut Walk,
) -> Result<()> {
    let io = |path: &Path, e: std::io::Error| Error::ContextUnreadable {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut children: Vec<_> = fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| io(dir, e))?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let name = rel.to_string_lossy().replace('\\', "/");
        let meta = fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
        let kept = always.contains(&name.as_str()) || !ignore.excluded(&name);
        if meta.is_dir() {
            // An excluded folder is skipped whole unless an exception may re-include a file.
            if kept || ignore.has_exceptions() {
                if kept {
                    walk.entries.push(Entry {
                        name: name.clone(),
                        path: path.clone(),
                        kind: Kind::Dir,
                    });
                }
                visit(root, &path, ignore, always, max, walk)?;
            }
        } else if !kept {
            continue;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(|e| io(&path, e))?;
            if escapes(rel, &target) {
                return Err(Error::ContextSymlinkEscape {
                    path: name,
                    target: target.display().to_string(),
                });
            }
            walk.entries.push(Entry {
                name,
                path,
                kind: Kind::Symlink(target),
            });
        } else if meta.is_file() {
            walk.bytes += meta.len();
            if walk.bytes > max {
                return Err(Error::ContextTooLarge { limit_bytes: max });
            }
            walk.entries.push(Entry {
                name,
                path,
                kind: Kind::File,
            });
        }
        // Sockets, pipes and devices have no place in an image: left out.
    }
    Ok(())
}

/// Where `name` (relative) really is inside `root`, symlinks followed: None when it does not
/// exist, an error when it leaves `root`. What is read there is what the engine reads.
pub fn resolve_inside(root: &Path, name: &str) -> Result<Option<PathBuf>> {
    let unreadable = |e: std::io::Error| Error::ContextUnreadable {
        path: root.display().to_string(),
        message: e.to_string(),
    };
    let root = root.canonicalize().map_err(unreadable)?;
    let Ok(real) = root.join(name).canonicalize() else {
        return Ok(None);
    };
    if !real.starts_with(&root) {
        return Err(Error::ContextSymlinkEscape {
            path: name.to_string(),
            target: real.display().to_string(),
        });
    }
    Ok(Some(real))
}

/// Whether a symlink at `link` (relative to the context) pointing at `target` leaves it.
pub fn escapes(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for part in target.components() {
        match part {
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// Streams the walk as a tar archive, 64 KiB at a time, through a bounded channel: the
/// context is never held in memory whole.
pub fn tar_stream(walk: Walk) -> TarStream {
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
    tokio::task::spawn_blocking(move || {
        let writer = ChunkWriter {
            sender: sender.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let mut builder = tar::Builder::new(writer);
        builder.follow_symlinks(false);
        let result = (|| -> std::io::Result<()> {
            for entry in &walk.entries {
                match &entry.kind {
                    Kind::Dir => builder.append_dir(&entry.name, &entry.path)?,
                    Kind::File => builder.append_path_with_name(&entry.path, &entry.name)?,
                    Kind::Symlink(target) => {
                        let mut header = tar::Header::new_gnu();
                        header.set_entry_type(tar::EntryType::Symlink);
                        header.set_size(0);
                        header.set_mode(0o777);
                        builder.append_link(&mut header, &entry.name, target)?;
                    }
                }
            }
            builder.into_inner()?.flush_all()
        })();
        if let Err(e) = result {
            let _ = sender.blocking_send(Err(e));
        }
    });
    TarStream(receiver)
}

const CHUNK: usize = 64 * 1024;

struct ChunkWriter {
    sender: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::other("the engine stopped reading the build context"))
    }

    fn flush_all(mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The receiving end of [`tar_stream`], as the engine's request body.
pub struct TarStream(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_util::Stream for TarStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_follows_dockers_rules() {
        let ignore = Ignore::parse("# comment\n.git\n/.env\n**/__pycache__\n**/*.pyc\nnode_modules\n*.md\n!README.md\nbuild/\ndata/**/*.csv\n[Tt]mp?\n");
        let cases = [
            (".git", true),
            (".git/config", true),
            (".env", true),
            ("src/.env", false),
            ("src/pkg/__pycache__/x.cpython.pyc", true),
            ("a/b/c.pyc", true),
            ("node_modules/x/index.js", true),
            ("NOTES.md", true),
            ("README.md", false),
            ("docs/guide.md", false),
            ("build/out.o", true),
            ("data/x/y/z.csv", true),
            ("data/z.csv", true),
            ("data/z.json", false),
            ("tmp1", true),
            ("Tmpa/file", true),
            ("main.py", false),
        ];
        for (path, want) in cases {
            assert_eq!(ignore.excluded(path), want, "{path}");
        }
    }

    #[test]
    fn glob_names_match_like_go() {
        assert!(match_name(b"*.py", b"main.py"));
        assert!(!match_name(b"*.py", b"main.pyc"));
        assert!(match_name(b"a?c", b"abc"));
        assert!(match_name(b"[a-c]x", b"bx"));
        assert!(!match_name(b"[!a-c]x", b"bx"));
        assert!(match_name(b"\\*", b"*"));
        assert!(!match_name(b"\\*", b"a"));
    }

    #[test]
    fn symlinks_that_leave_the_context_are_caught() {
        assert!(escapes(Path::new("link"), Path::new("/etc/passwd")));
        assert!(escapes(Path::new("link"), Path::new("../outside")));
        assert!(escapes(Path::new("a/b/link"), Path::new("../../../x")));
        assert!(!escapes(Path::new("a/b/link"), Path::new("../../x")));
        assert!(!escapes(Path::new("a/link"), Path::new("sibling")));
        assert!(escapes(Path::new("a/link"), Path::new("x/../../../y")));
    }
}
