//! The grammars of the names callers give adde: container ids and names, image references,
//! sessions and run ids. Every one of them reaches an Engine API path or a host path, so each
//! is checked against its grammar (and a length bound) before it is used; anything else is
//! `invalid_argument`. A name that passes holds nothing a URL or a path would read specially
//! (no '/', '?', '#', '%', "..", whitespace or control characters where they could matter).

use crate::error::{Error, Result};

/// Longest container id or name accepted (ids are 64 hex digits).
const MAX_CONTAINER_ID: usize = 128;
/// Longest image reference accepted (Docker's own limit for a name is 255).
const MAX_IMAGE_REFERENCE: usize = 512;
const MAX_SESSION: usize = 128;

/// A container id, short id or name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 characters.
pub fn container_id(field: &'static str, id: &str) -> Result<String> {
    let id = id.trim();
    let valid = !id.is_empty()
        && id.len() <= MAX_CONTAINER_ID
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(Error::invalid(
            field,
            format!(
                "{field} {} is not a container id or name (letters, digits, '_', '.', '-', starting with a letter or digit, at most {MAX_CONTAINER_ID})",
                shown(id)
            ),
        ));
    }
    Ok(id.to_string())
}

/// An image reference, `[domain[:port]/]path[:tag][@digest]`, or an image id
/// (`sha256:<hex>` or hex), by Docker's reference grammar.
pub fn image_reference(field: &'static str, reference: &str) -> Result<String> {
    let bad = |why: &str| {
        Err(Error::invalid(
            field,
            format!("{} is not a valid image reference: {why}", shown(reference)),
        ))
    };
    if reference.is_empty() {
        return bad("it is empty");
    }
    if reference.len() > MAX_IMAGE_REFERENCE {
        return bad("it is too long");
    }
    // Docker's grammar allows ".." inside a tag or a digest's algorithm; adde does not, so no
    // accepted reference holds one anywhere (found by the refs fuzz target).
    if reference.contains("..") {
        return bad("it contains '..'");
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let Some((algorithm, hex)) = digest.split_once(':') else {
            return bad("a digest is algorithm:hex, e.g. sha256:…");
        };
        let algorithm_ok = algorithm.starts_with(|c: char| c.is_ascii_alphabetic())
            && algorithm
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.'));
        if !algorithm_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return bad("the digest is not algorithm:hex");
        }
    }
    let (name, tag) = match rest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (rest, None),
    };
    if let Some(tag) = tag {
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !tag_ok {
            return bad("a tag holds letters, digits, '_', '.' and '-' (at most 128)");
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 && is_domain(components[0]) {
        components.remove(0);
    }
    if !components.iter().all(|c| is_path_component(c)) {
        return bad("each path component is lowercase letters and digits, separated by '.', '_', '__' or '-'");
    }
    Ok(reference.to_string())
}

/// `host`, `host:port`, `a.b.c` or `localhost`, as the first part of a reference.
fn is_domain(part: &str) -> bool {
    let looks_like_domain = part.contains(['.', ':']) || part == "localhost";
    let (host, port) = match part.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (part, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    looks_like_domain && port_ok && host_ok
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A session name: printable, no control characters, at most 128 characters.
pub fn session(field: &'static str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_SESSION || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!(
                "session name {} must be 1 to {MAX_SESSION} printable characters",
                shown(name)
            ),
        ));
    }
    Ok(name.to_string())
}

/// A run id as adde makes them: `r<13 digits>-<8 hex digits>`.
pub fn run_id(field: &'static str, id: &str) -> Result<String> {
    let valid = id
        .strip_prefix('r')
        .and_then(|r| r.split_once('-'))
        .is_some_and(|(millis, random)| {
            millis.len() == 13
                && millis.chars().all(|c| c.is_ascii_digit())
                && random.len() == 8
                && random.chars().all(|c| c.is_ascii_hexdigit())
        });
    if !valid {
        return Err(Error::invalid(
            field,
            format!(
                "{} is not a run id like \"r1700000000000-1a2b3c4d\"",
                shown(id)
            ),
        ));
    }
    Ok(id.to_string())
}

/// A value for an error message: quoted, and cut short when long.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(80).collect();
    if cut.len() < value.len() {
        format!("{cut:?}… ({} bytes)", value.len())
    } else {
        format!("{cut:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn container_ids_that_rewrite_request_paths_are_refused() {
        for good in ["adde-1a2b3c", "0123456789ab", "my_env.1"] {
            assert_eq!(container_id("container_id", good).unwrap(), good);
        }
        let long = "a".repeat(100_000);
        for bad in [
            "",
            "..",
            "/",
            "../images/x",
            "x#",
            "x?all=1",
            "a/b",
            "-x",
            ".x",
            "a b",
            "a%2e",
            &long,
        ] {
            let err = container_id("container_id", bad).unwrap_err();
            assert_eq!(err.code(), "invalid_argument", "{bad:?}");
            assert!(err.to_string().len() < 400, "the message stays short");
        }
    }

    #[test]
    fn image_references_follow_docker_s_grammar() {
        for good in [
            "busybox",
            "busybox:1.36",
            "library/busybox:latest",
            "127.0.0.1:5000/adde-test/busybox:1",
            "localhost/x",
            "ghcr.io/a/b-c__d.e:v1.2_3",
            "repo@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789ab",
        ] {
            assert!(image_reference("image", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Busybox",
            "../containers/x",
            "a/../b",
            "x?all=1",
            "x#y",
            "bad name",
            "a//b",
            "a:",
            "a@sha256:zz",
            "%2e%2e/x",
            "busybox:1a.3..",
            "x@a..:0123456789abcdef0123456789abcdef",
        ] {
            assert!(image_reference("image", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn run_ids_and_sessions() {
        assert!(run_id("run_id", "r1700000000000-1a2b3c4d").is_ok());
        for bad in ["..", "r1-1", "r1700000000000-1a2b3c4d/../x", ""] {
            assert!(run_id("run_id", bad).is_err(), "{bad}");
        }
        assert!(session("session", "my agent / task 1").is_ok());
        assert!(session("session", "a\nb").is_err());
        assert!(session("session", &"x".repeat(129)).is_err());
    }

    proptest! {
        /// Whatever passes can be put in a URL path as is: nothing a URL or path reads specially.
        #[test]
        fn accepted_names_hold_nothing_a_url_reads_specially(s in "\\PC{0,40}") {
            if let Ok(id) = container_id("container_id", &s) {
                prop_assert!(!id.contains(['/', '?', '#', '%']) && !id.starts_with('.'));
            }
            if let Ok(reference) = image_reference("image", &s) {
                prop_assert!(!reference.contains(['?', '#', '%', ' ']) && !reference.contains(".."));
            }
        }
    }
}
