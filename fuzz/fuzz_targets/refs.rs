//! The grammars of caller-given names (container ids, image references, sessions, run ids):
//! each reaches an Engine API path or a host path, so whatever is accepted must hold nothing a
//! URL or a path reads specially, and must be accepted again as it is.
#![no_main]

mod common;

use adde::refs::{container_id, image_reference, run_id, session};
use common::not_internal;
use libfuzzer_sys::fuzz_target;

fn refused_cleanly<T>(what: &str, input: &str, result: &adde::error::Result<T>) {
    not_internal(what, &input, result);
    if let Err(err) = result {
        assert_eq!(err.code(), "invalid_argument", "{what} on {input:?}");
        // The message quotes the input cut short: it stays small whatever was sent.
        assert!(
            err.to_string().len() < 1024,
            "{what}: a {}-byte message",
            err.to_string().len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let s = input.as_ref();

    let result = container_id("container_id", s);
    refused_cleanly("container_id", s, &result);
    if let Ok(id) = result {
        assert!(!id.is_empty() && id.len() <= 128, "{id:?}");
        assert!(!id.contains(['/', '?', '#', '%']), "{id:?}");
        assert!(
            !id.contains(char::is_whitespace) && !id.contains(char::is_control),
            "{id:?}"
        );
        assert!(!id.starts_with(['.', '-']), "{id:?}");
        assert_eq!(container_id("container_id", &id).ok(), Some(id.clone()));
    }

    let result = image_reference("image", s);
    refused_cleanly("image_reference", s, &result);
    if let Ok(reference) = result {
        assert!(
            !reference.is_empty() && reference.len() <= 512,
            "{reference:?}"
        );
        assert!(!reference.contains(".."), "{reference:?}");
        assert!(!reference.contains(['?', '#', '%']), "{reference:?}");
        assert!(
            !reference.contains(char::is_whitespace) && !reference.contains(char::is_control),
            "{reference:?}"
        );
        assert_eq!(
            image_reference("image", &reference).ok(),
            Some(reference.clone())
        );
    }

    let result = session("session", s);
    refused_cleanly("session", s, &result);
    if let Ok(name) = result {
        let n = name.chars().count();
        assert!((1..=128).contains(&n), "{name:?}");
        assert!(!name.contains(char::is_control), "{name:?}");
        assert_eq!(name.trim(), name);
        assert_eq!(session("session", &name).ok(), Some(name.clone()));
    }

    let result = run_id("run_id", s);
    refused_cleanly("run_id", s, &result);
    if let Ok(id) = result {
        assert_eq!(id.len(), 23, "{id:?}");
        assert!(id.starts_with('r'), "{id:?}");
        assert!(
            id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{id:?}"
        );
    }
});
