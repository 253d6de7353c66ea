//! The Dockerfile parser and the security gate on it: a Dockerfile comes from a repository or
//! an agent, so any text must parse or fail cleanly, and the gate must hold its own invariants.
#![no_main]

use adde::dockerfile::{check, parse, Args, RULES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    let instructions = match parse(&text) {
        Ok(instructions) => instructions,
        Err(err) => {
            assert!(
                err.line >= 1 && err.line <= lines.max(1),
                "error line {} of {lines}",
                err.line
            );
            return;
        }
    };
    let mut last_line = 0;
    let mut last_stage = 0;
    for ins in &instructions {
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
        let _ = (ins.args.words(), ins.args.text());
    }
    let findings = check(&instructions);
    let mut previous = 0;
    for finding in &findings {
        assert!(finding.line >= previous, "findings out of line order");
        previous = finding.line;
        assert!(
            instructions.iter().any(|i| i.line == finding.line),
            "finding on line {} that holds no instruction",
            finding.line
        );
        let rule = RULES.iter().find(|(id, _, _)| *id == finding.rule);
        let (_, severity, _) = rule.unwrap_or_else(|| panic!("unknown rule {}", finding.rule));
        assert_eq!(*severity, finding.severity, "{}", finding.rule);
        assert!(
            finding.instruction.len() <= 120,
            "instruction shown at {} bytes",
            finding.instruction.len()
        );
    }
    // The gate is a pure function of the instructions.
    assert_eq!(check(&instructions), findings);
});
