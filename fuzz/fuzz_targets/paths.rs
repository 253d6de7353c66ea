//! Path validation: a relative path accepted for a file inside a folder never climbs out of it,
//! and an environment path comes back absolute and normalized. Also the other shared input
//! checks (environment variables, numeric ranges, sizes such as "512m").
#![no_main]

mod common;

use std::collections::BTreeMap;

use adde::tools::input::{container_path, env_vars, in_range, parse_size, relative_path};
use common::{not_internal, Bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes::new(data);
    let number = f64::from_bits(bytes.u64());
    let input = String::from_utf8_lossy(bytes.rest());
    let s = input.as_ref();

    let result = relative_path("filename", s);
    not_internal("relative_path", &s, &result);
    if let Ok(path) = result {
        assert!(
            !path.is_empty() && !path.starts_with('/') && !path.ends_with('/'),
            "{s:?} -> {path:?}"
        );
        assert!(!path.contains('\0'), "{s:?} -> {path:?}");
        for part in path.split('/') {
            assert!(!matches!(part, "" | "." | ".."), "{s:?} -> {path:?}");
        }
        assert_eq!(
            relative_path("filename", &path).ok(),
            Some(path.clone()),
            "not idempotent"
        );
    }

    let result = container_path("path", s);
    not_internal("container_path", &s, &result);
    if let Ok(path) = result {
        assert!(
            path.starts_with('/') && !path.contains('\0'),
            "{s:?} -> {path:?}"
        );
        if path != "/" {
            assert!(!path.ends_with('/'), "{s:?} -> {path:?}");
            for part in path[1..].split('/') {
                assert!(!matches!(part, "" | "." | ".."), "{s:?} -> {path:?}");
            }
        }
        assert_eq!(
            container_path("path", &path).ok(),
            Some(path.clone()),
            "not idempotent"
        );
        if !s.starts_with('/') && !s.split('/').any(|p| p == "..") {
            assert!(path.starts_with("/workspace"), "{s:?} -> {path:?}");
        }
    }

    let (key, value) = s.split_once('\n').unwrap_or((s, ""));
    let vars = BTreeMap::from([(key.to_string(), value.to_string())]);
    let result = env_vars("env", &vars);
    not_internal("env_vars", &s, &result);
    if let Ok(lines) = result {
        assert_eq!(lines, [format!("{key}={value}")]);
        assert!(!key.is_empty() && !key.contains(['=', '\0']) && !value.contains('\0'));
    }

    let min = [0, 1, 4 * 1024 * 1024, i64::MAX][(number.to_bits() % 4) as usize];
    let result = parse_size("memory", s, min);
    not_internal("parse_size", &s, &result);
    if let Ok(size) = result {
        assert!(
            size >= min && size <= 1 << 50,
            "{s:?} -> {size} (min {min})"
        );
    }

    let result = in_range("timeout", number, 0.0, 3600.0);
    not_internal("in_range", &number, &result);
    if let Ok(n) = result {
        assert!(n.is_finite() && (0.0..=3600.0).contains(&n));
    }
});
