//! The `.dockerignore` matcher: patterns come from a repository or an agent. Input: the
//! `.dockerignore` text, a NUL byte, then paths one per line. Any pattern must match in bounded
//! time (libFuzzer's -timeout catches backtracking blow-ups) and without panicking.
#![no_main]

use adde::context::Ignore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (patterns, paths) = text.split_once('\0').unwrap_or((&text, "a/b/c"));
    let ignore = Ignore::parse(patterns);
    let has_exceptions = patterns.lines().any(|l| l.trim().starts_with('!'));
    let has_rules = patterns.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#')
    });
    for path in paths.split('\n') {
        let excluded = ignore.excluded(path);
        assert_eq!(
            excluded,
            ignore.excluded(path),
            "not deterministic on {path:?}"
        );
        if excluded {
            assert!(has_rules, "{path:?} excluded by no rule");
        }
        // A folder left out takes everything in it along, unless an exception brings some back.
        if excluded && !has_exceptions && !path.split('/').all(str::is_empty) {
            let child = format!("{path}/child");
            assert!(
                ignore.excluded(&child),
                "{path:?} is excluded but {child:?} is not"
            );
        }
        // Empty components do not change a path.
        let doubled = path.replace('/', "//");
        assert_eq!(
            excluded,
            ignore.excluded(&doubled),
            "{path:?} vs {doubled:?}"
        );
    }
});
