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
    rules: Vec<(bool, Vec<Part>)>,
}

/// One component of a pattern.
#[derive(Debug)]
enum Part {
    /// `**`: any number of path components.
    AnyDepth,
    Glob(Vec<Token>),
}

#[derive(Debug, PartialEq)]
enum Token {
    Byte(u8),
    /// `?`
    AnyByte,
    /// `*`
    Star,
    /// `[set]`, `[!set]`, `[^set]`: inclusive byte ranges.
    Set {
        negate: bool,
        ranges: Vec<(u8, u8)>,
    },
}

impl Token {
    fn matches(&self, c: u8) -> bool {
        match self {
            Token::Byte(b) => *b == c,
            Token::AnyByte => true,
            Token::Star => false,
            Token::Set { negate, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negate
            }
        }
    }
}

/// A component's glob as tokens: `*`, `?`, `[set]`, `\` escapes; a `[` never closed is a
/// plain `[`.
fn tokens(pattern: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        let c = pattern[i];
        i += 1;
        let close = pattern[i..]
            .iter()
            .skip(1)
            .position(|&b| b == b']')
            .map(|p| i + p + 1);
        out.push(match (c, close) {
            (b'*', _) => Token::Star,
            (b'?', _) => Token::AnyByte,
            (b'[', Some(close)) => {
                let negate = matches!(pattern[i], b'!' | b'^');
                let set = &pattern[i + usize::from(negate)..close];
                let mut ranges = Vec::new();
                let mut j = 0;
                while j < set.len() {
                    if j + 2 < set.len() && set[j + 1] == b'-' {
                        ranges.push((set[j], set[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((set[j], set[j]));
                        j += 1;
                    }
                }
                i = close + 1;
                Token::Set { negate, ranges }
            }
            (b'\\', _) if i < pattern.len() => {
                i += 1;
                Token::Byte(pattern[i - 1])
            }
            _ => Token::Byte(c),
        });
    }
    out
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
                let parts: Vec<Part> = crate::paths::lexical_parts(pattern)
                    .into_iter()
                    .map(|p| match p {
                        "**" => Part::AnyDepth,
                        glob => Part::Glob(tokens(glob.as_bytes())),
                    })
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
            if matched_prefixes(pattern, &parts)
                .into_iter()
                .skip(1)
                .any(|m| m)
            {
                excluded = !exception;
            }
        }
        excluded
    }

    fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(exception, _)| *exception)
    }
}

/// For each n, whether the pattern matches the first n components of the path. Computed
/// component by component, so `**` costs no backtracking whatever the pattern.
fn matched_prefixes(pattern: &[Part], path: &[&str]) -> Vec<bool> {
    let mut reached = vec![false; path.len() + 1];
    reached[0] = true;
    for part in pattern {
        let mut next = vec![false; path.len() + 1];
        match part {
            Part::AnyDepth => {
                let mut any = false;
                for (n, slot) in next.iter_mut().enumerate() {
                    any |= reached[n];
                    *slot = any;
                }
            }
            Part::Glob(tokens) => {
                for (n, name) in path.iter().enumerate() {
                    next[n + 1] = reached[n] && match_name(tokens, name.as_bytes());
                }
            }
        }
        reached = next;
    }
    reached
}

/// One path component against a glob, in time linear in their product: on a mismatch only
/// the last `*` is retried, one byte further.
fn match_name(tokens: &[Token], name: &[u8]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(Token::Star) => {
                last_star = Some((t, n));
                t += 1;
            }
            Some(token) if token.matches(name[n]) => {
                t += 1;
                n += 1;
            }
            _ => match last_star {
                Some((star, from)) => {
                    last_star = Some((star, from + 1));
                    t = star + 1;
                    n = from + 1;
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|token| *token == Token::Star)
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
        let glob =
            |pattern: &str, name: &str| match_name(&tokens(pattern.as_bytes()), name.as_bytes());
        assert!(glob("*.py", "main.py"));
        assert!(!glob("*.py", "main.pyc"));
        assert!(glob("a?c", "abc"));
        assert!(glob("[a-c]x", "bx"));
        assert!(!glob("[!a-c]x", "bx"));
        assert!(glob("[^a-c]x", "dx"));
        assert!(glob("\\*", "*"));
        assert!(!glob("\\*", "a"));
        assert!(glob("[x", "[x"));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b*c", "aXbYbZ"));
        assert!(glob("**", "anything"));
    }

    #[test]
    fn patterns_that_backtrack_take_no_time() {
        let started = std::time::Instant::now();
        let ignore = Ignore::parse(&format!("{}b\n{}x", "*a".repeat(30), "**/".repeat(30)));
        let deep = vec!["a".repeat(60); 40].join("/");
        assert!(!ignore.excluded(&deep));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A plain file name: no glob characters, not `.` or `..`.
        fn name() -> impl Strategy<Value = String> {
            "[a-z0-9_-][a-z0-9._-]{0,8}"
        }

        proptest! {
            #[test]
            fn the_matcher_never_panics(text in "\\PC{0,120}", path in "\\PC{0,60}") {
                let ignore = Ignore::parse(&text);
                let _ = ignore.excluded(&path);
                let _ = ignore.has_exceptions();
            }

            #[test]
            fn the_matcher_agrees_with_simple_cases(
                a in name(),
                b in name(),
                dir in name(),
                ext in "[a-z]{1,4}",
            ) {
                let inside = format!("{a}/{b}");
                let nested = format!("{dir}/{a}");
                let deep = format!("{dir}/{b}/{a}");
                let with_ext = format!("{b}.{ext}");
                let other_ext = format!("{b}.{ext}x");
                let literal = Ignore::parse(&a);
                prop_assert!(literal.excluded(&a));
                prop_assert!(literal.excluded(&inside), "a folder's files go with it");
                prop_assert_eq!(literal.excluded(&b), a == b);
                prop_assert_eq!(literal.excluded(&nested), dir == a, "patterns are anchored at the root");
                let anywhere = Ignore::parse(&format!("**/{a}"));
                prop_assert!(anywhere.excluded(&deep));
                let everything_but = Ignore::parse(&format!("*\n!{a}"));
                prop_assert!(!everything_but.excluded(&a));
                prop_assert_eq!(everything_but.excluded(&b), a != b);
                let by_extension = Ignore::parse(&format!("*.{ext}"));
                prop_assert!(by_extension.excluded(&with_ext));
                prop_assert!(!by_extension.excluded(&other_ext));
                prop_assert!(!Ignore::parse("").excluded(&a));
            }
        }
    }
}
