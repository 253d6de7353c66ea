//! The Dockerfile parser, in both readings (BuildKit's and the classic builder's), and the
//! security gate on it: a Dockerfile comes from a repository or an agent, so any text must
//! parse or fail cleanly, and the gate must hold its own invariants.
#![no_main]

use std::collections::BTreeMap;

use adde::dockerfile::{gate, parse, Args, Policy, Reading};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the policy and a build arg; the rest is the Dockerfile.
    let (&knobs, text) = data.split_first().unwrap_or((&0, &[]));
    let text = String::from_utf8_lossy(text);
    let lines = text.lines().count();
    for reading in [Reading::BuildKit, Reading::Classic] {
        let file = match parse(&text, reading) {
            Ok(file) => file,
            Err(err) => {
                assert!(
                    err.line >= 1 && err.line <= lines.max(1),
                    "error line {} of {lines}",
                    err.line
                );
                continue;
            }
        };
        let mut last_line = 0;
        let mut last_stage = 0;
        for ins in &file.instructions {
            assert!(
                ins.line > last_line && ins.line <= lines,
                "line {} after {last_line} of {lines}",
                ins.line
            );
            last_line = ins.line;
            assert!(
                !ins.keyword.is_empty() && ins.keyword.bytes().all(|b| b.is_ascii_uppercase()),
                "keyword {:?}",
                ins.keyword
            );
            assert!(ins.stage >= last_stage && ins.stage <= last_stage + 1);
            last_stage = ins.stage;
            for (name, _) in &ins.flags {
                assert_eq!(name, &name.to_ascii_lowercase());
            }
            if let Args::Shell(text) = &ins.args {
                assert_eq!(text.trim(), text);
            }
            if reading == Reading::Classic {
                assert!(
                    ins.heredocs.is_empty(),
                    "the classic builder reads no heredocs"
                );
            }
            let _ = (ins.args.words(), ins.args.text());
        }
    }

    let build_args = match knobs % 4 {
        0 => BTreeMap::new(),
        1 => BTreeMap::from([("IMAGE".to_string(), "busybox:latest".to_string())]),
        2 => BTreeMap::from([("P".to_string(), "/var/run/docker.sock".to_string())]),
        _ => BTreeMap::from([("N".to_string(), "host".to_string())]),
    };
    let policy = Policy {
        allow_remote_add: knobs & 4 != 0,
        build_args: &build_args,
    };
    let Ok(findings) = gate(&text, &policy) else {
        return;
    };
    let mut previous = 0;
    for finding in &findings {
        assert!(finding.line >= previous, "findings out of line order");
        previous = finding.line;
        assert!(
            finding.line >= 1 && finding.line <= lines,
            "finding on line {} of {lines}",
            finding.line
        );
        assert_eq!(
            finding.rule.severity(),
            finding.severity,
            "{}",
            finding.rule
        );
        assert!(
            finding.instruction.len() <= 120,
            "instruction shown at {} bytes",
            finding.instruction.len()
        );
    }
    // The gate is a pure function of the text and the policy.
    assert_eq!(gate(&text, &policy).ok(), Some(findings));
});
