//! A Dockerfile parser (directives, the escape character, line continuations, comments, JSON
//! and shell forms, flags, heredocs, case-insensitive instructions, stages) and the security
//! policy adde applies to it before a build. Rules have stable ids; a blocked Dockerfile never
//! reaches the engine. Rules look at parsed instructions, never at raw text, so a comment that
//! mentions docker.sock is not a finding and a continuation line cannot hide a flag.

use serde::Serialize;

/// One instruction, its continuation lines joined.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// Line where the instruction starts (1-based).
    pub line: usize,
    /// Upper-cased keyword: RUN, COPY, FROM, ...
    pub keyword: String,
    /// Leading `--name=value` flags (value empty for bare `--name`).
    pub flags: Vec<(String, String)>,
    pub args: Args,
    /// Bodies of `<<WORD` heredocs, in order.
    pub heredocs: Vec<String>,
    /// Index of the stage (FROM) this instruction belongs to; ARGs before the first FROM are 0.
    pub stage: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Args {
    Json(Vec<String>),
    Shell(String),
}

impl Args {
    /// The arguments as words (JSON items, or the shell text split on whitespace).
    pub fn words(&self) -> Vec<String> {
        match self {
            Args::Json(items) => items.clone(),
            Args::Shell(text) => text.split_whitespace().map(unquote).collect(),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Args::Json(items) => items.join(" "),
            Args::Shell(text) => text.clone(),
        }
    }
}

fn unquote(word: &str) -> String {
    word.trim_matches(|c| c == '"' || c == '\'').to_string()
}

#[derive(Debug)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a Dockerfile into instructions.
pub fn parse(text: &str) -> Result<Vec<Instruction>, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let escape = escape_directive(&lines)?;
    let mut instructions = Vec::new();
    let mut stage = 0usize;
    let mut seen_from = false;
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut logical = String::new();
        loop {
            let raw = lines[i].trim_end();
            i += 1;
            match raw.strip_suffix(escape) {
                Some(body) => {
                    // Joined as is: the next line keeps its own leading whitespace.
                    logical.push_str(body);
                    // Comment and blank lines inside a continuation are dropped, as Docker does.
                    while i < lines.len() && {
                        let next = lines[i].trim();
                        next.is_empty() || next.starts_with('#')
                    } {
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                }
                None => {
                    logical.push_str(raw);
                    break;
                }
            }
        }
        let logical = logical.trim();
        // A lone continuation at the end of the file continues into nothing: no instruction.
        if logical.is_empty() {
            continue;
        }
        let (keyword, rest) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((logical, ""));
        let keyword = keyword.to_ascii_uppercase();
        if !keyword.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(ParseError {
                line: start + 1,
                message: format!("unknown instruction {keyword:?}"),
            });
        }
        let (flags, rest) = split_flags(rest.trim());
        let heredocs = if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            let (bodies, next) = read_heredocs(rest, &lines, i, start)?;
            i = next;
            bodies
        } else {
            Vec::new()
        };
        if keyword == "FROM" {
            if seen_from {
                stage += 1;
            }
            seen_from = true;
        }
        instructions.push(Instruction {
            line: start + 1,
            keyword,
            flags,
            args: parse_args(rest),
            heredocs,
            stage,
        });
    }
    Ok(instructions)
}

/// The escape character from a `# escape=` directive at the top, else `\`.
fn escape_directive(lines: &[&str]) -> Result<char, ParseError> {
    for (n, line) in lines.iter().enumerate() {
        let Some(comment) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = comment.split_once('=') else {
            break;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "escape" => {
                return match value.trim() {
                    "\\" => Ok('\\'),
                    "`" => Ok('`'),
                    other => Err(ParseError {
                        line: n + 1,
                        message: format!("invalid escape directive {other:?} (use \\ or `)"),
                    }),
                }
            }
            "syntax" | "check" => continue,
            _ => break,
        }
    }
    Ok('\\')
}

fn split_flags(mut rest: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    while let Some(after) = rest.strip_prefix("--") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let flag = &after[..end];
        let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
        flags.push((name.to_ascii_lowercase(), unquote(value)));
        rest = after[end..].trim_start();
    }
    (flags, rest)
}

fn parse_args(rest: &str) -> Args {
    let trimmed = rest.trim();
    if trimmed.starts_with('[') {
        if let Ok(items) = serde_json::from_str::<Vec<String>>(trimmed) {
            return Args::Json(items);
        }
    }
    Args::Shell(trimmed.to_string())
}

/// Reads the bodies of the heredocs a line opens (`<<EOF`, `<<-EOF`, `<<"EOF"`), which
/// follow it; returns them and the index of the line after the last one.
fn read_heredocs(
    rest: &str,
    lines: &[&str],
    mut i: usize,
    start: usize,
) -> Result<(Vec<String>, usize), ParseError> {
    let mut bodies = Vec::new();
    let mut search = rest;
    while let Some(pos) = search.find("<<") {
        let after = &search[pos + 2..];
        let strip_tabs = after.starts_with('-');
        let after = after.trim_start_matches('-');
        let word: String = after
            .trim_matches(|c| c == '"' || c == '\'')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let consumed = after.find(word.as_str()).map_or(0, |p| p + word.len());
        search = &after[consumed..];
        if word.is_empty() {
            continue;
        }
        let mut body = String::new();
        loop {
            let Some(line) = lines.get(i) else {
                return Err(ParseError {
                    line: start + 1,
                    message: format!("heredoc <<{word} is never closed"),
                });
            };
            i += 1;
            let line = if strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if line.trim_end() == word {
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        bodies.push(body);
    }
    Ok((bodies, i))
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Block,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub line: usize,
    pub instruction: String,
    pub message: String,
}

/// The policy's rules: id, severity, what it means.
pub const RULES: &[(&str, Severity, &str)] = &[
    (
        "ADDE-B001",
        Severity::Block,
        "RUN --mount of the Docker socket",
    ),
    ("ADDE-B002", Severity::Block, "VOLUME on the Docker socket"),
    (
        "ADDE-B003",
        Severity::Block,
        "COPY or ADD of the Docker socket",
    ),
    ("ADDE-B004", Severity::Block, "RUN --security=insecure"),
    ("ADDE-B005", Severity::Block, "RUN --network=host"),
    (
        "ADDE-W001",
        Severity::Warning,
        "remote ADD without --checksum",
    ),
    (
        "ADDE-W002",
        Severity::Warning,
        "a download piped into a shell",
    ),
    (
        "ADDE-W003",
        Severity::Warning,
        "a secret-looking ENV or ARG name",
    ),
    (
        "ADDE-W004",
        Severity::Warning,
        "the final stage runs as root",
    ),
    (
        "ADDE-W005",
        Severity::Warning,
        "an unpinned or latest base image",
    ),
];

fn finding(rule: &'static str, ins: &Instruction, message: String) -> Finding {
    let severity = RULES
        .iter()
        .find(|(id, _, _)| *id == rule)
        .map_or(Severity::Warning, |(_, s, _)| *s);
    let mut text = format!("{} {}", ins.keyword, ins.args.text());
    if text.len() > 120 {
        let mut cut = 117;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    Finding {
        rule,
        severity,
        line: ins.line,
        instruction: text,
        message,
    }
}

/// Whether a path is the Docker socket, however it is spelled.
fn is_docker_socket(path: &str) -> bool {
    let parts = crate::paths::lexical_parts(path.trim().trim_matches(|c| c == '"' || c == '\''));
    matches!(
        parts.as_slice(),
        ["var", "run", "docker.sock"] | ["run", "docker.sock"]
    ) || parts.last() == Some(&"docker.sock")
}

/// Applies the policy to a parsed Dockerfile; findings are in line order.
pub fn check(instructions: &[Instruction]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let stage_names: Vec<String> = instructions
        .iter()
        .filter(|i| i.keyword == "FROM")
        .filter_map(|i| {
            let words = i.args.words();
            let pos = words.iter().position(|w| w.eq_ignore_ascii_case("as"))?;
            words.get(pos + 1).map(|n| n.to_ascii_lowercase())
        })
        .collect();
    for ins in instructions {
        let flag = |name: &'static str| {
            ins.flags
                .iter()
                .filter(move |(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        match ins.keyword.as_str() {
            "RUN" => {
                for mount in flag("mount") {
                    let touches = mount.split(',').any(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or(("", kv));
                        matches!(
                            k.trim(),
                            "source" | "src" | "target" | "dst" | "destination" | ""
                        ) && is_docker_socket(v)
                    });
                    if touches {
                        findings.push(finding("ADDE-B001", ins, format!("mounts the Docker socket (--mount={mount}): it would give the build control of the engine")));
                    }
                }
                if flag("security").any(|v| v == "insecure") {
                    findings.push(finding(
                        "ADDE-B004",
                        ins,
                        "--security=insecure runs the step without the sandbox".into(),
                    ));
                }
                if flag("network").any(|v| v == "host") {
                    findings.push(finding(
                        "ADDE-B005",
                        ins,
                        "--network=host gives the step the host's network".into(),
                    ));
                }
                let scripts = std::iter::once(ins.args.text()).chain(ins.heredocs.iter().cloned());
                if scripts.into_iter().any(|s| pipes_download_into_shell(&s)) {
                    findings.push(finding("ADDE-W002", ins, "pipes a download into a shell: download to a file and verify its checksum first".into()));
                }
            }
            "VOLUME"
                if ins.args.words().iter().any(|w| {
                    is_docker_socket(w.trim_matches(|c| c == '[' || c == ']' || c == ','))
                }) =>
            {
                findings.push(finding(
                    "ADDE-B002",
                    ins,
                    "declares a volume on the Docker socket".into(),
                ));
            }
            "COPY" | "ADD" => {
                let words = ins.args.words();
                if words.iter().any(|w| is_docker_socket(w)) {
                    findings.push(finding(
                        "ADDE-B003",
                        ins,
                        "copies the Docker socket into the image".into(),
                    ));
                }
                let remote = words
                    .iter()
                    .take(words.len().saturating_sub(1))
                    .any(|w| w.starts_with("http://") || w.starts_with("https://"));
                if ins.keyword == "ADD" && remote && flag("checksum").next().is_none() {
                    findings.push(finding("ADDE-W001", ins, "adds a remote file without --checksum=sha256:...; its content is not verified".into()));
                }
            }
            "ENV" | "ARG" => {
                for name in declared_names(ins) {
                    if looks_secret(&name) {
                        findings.push(finding("ADDE-W003", ins, format!("{name} looks like a secret: it stays in the image's history; use a build secret instead")));
                    }
                }
            }
            "FROM" => {
                let words = ins.args.words();
                if let Some(image) = words.first() {
                    let lower = image.to_ascii_lowercase();
                    let is_stage = stage_names.contains(&lower);
                    if !is_stage
                        && lower != "scratch"
                        && !image.contains('$')
                        && !image.contains('@')
                    {
                        let last = image.rsplit('/').next().unwrap_or(image);
                        match last.split_once(':') {
                            None => findings.push(finding(
                                "ADDE-W005",
                                ins,
                                format!("{image} has no tag: pin a version (or a digest)"),
                            )),
                            Some((_, "latest")) => findings.push(finding(
                                "ADDE-W005",
                                ins,
                                format!("{image} uses latest: pin a version (or a digest)"),
                            )),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(last_stage) = instructions.iter().map(|i| i.stage).max() {
        let final_from = instructions
            .iter()
            .find(|i| i.stage == last_stage && i.keyword == "FROM");
        let last_user = instructions
            .iter()
            .rev()
            .find(|i| i.stage == last_stage && i.keyword == "USER");
        match (last_user, final_from) {
            (Some(user), _) => {
                let name = user.args.words().first().cloned().unwrap_or_default();
                let who = name.split(':').next().unwrap_or("");
                if who == "root" || who == "0" {
                    findings.push(finding(
                        "ADDE-W004",
                        user,
                        "the final stage runs as root: add USER with an unprivileged user".into(),
                    ));
                }
            }
            (None, Some(from))
                if !from
                    .args
                    .words()
                    .first()
                    .is_some_and(|w| w.eq_ignore_ascii_case("scratch")) =>
            {
                findings.push(finding("ADDE-W004", from, "the final stage sets no USER, so it runs as root unless the base image sets one".into()));
            }
            _ => {}
        }
    }
    findings.sort_by_key(|f| f.line);
    findings
}

/// Names an ENV or ARG declares: `A=1 B=2`, `A 1` (legacy ENV), `NAME` or `NAME=default`.
fn declared_names(ins: &Instruction) -> Vec<String> {
    let words = ins.args.words();
    if ins.keyword == "ENV" && words.first().is_some_and(|w| !w.contains('=')) {
        return words.into_iter().take(1).collect();
    }
    words
        .iter()
        .filter_map(|w| w.split('=').next())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|s| upper.contains(s))
}

/// `curl ... | sh`, `wget -O- ... | sudo bash`, and the like, in any line of a script.
fn pipes_download_into_shell(script: &str) -> bool {
    const SHELLS: &[&str] = &[
        "sh", "bash", "zsh", "dash", "ash", "ksh", "python", "python3", "perl", "ruby", "node",
    ];
    script.split(['\n', ';', '&']).any(|command| {
        let stages: Vec<Vec<&str>> = command
            .split('|')
            .map(|s| s.split_whitespace().collect())
            .collect();
        let downloads = stages
            .iter()
            .position(|s| s.iter().any(|w| matches!(*w, "curl" | "wget")));
        downloads.is_some_and(|d| {
            stages[d + 1..].iter().any(|stage| {
                let program = stage
                    .iter()
                    .find(|w| !matches!(**w, "sudo" | "env" | "-E") && !w.contains('='));
                program.is_some_and(|p| SHELLS.contains(&p.rsplit('/').next().unwrap_or(p)))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(dockerfile: &str) -> Vec<&'static str> {
        check(&parse(dockerfile).expect("parses"))
            .iter()
            .map(|f| f.rule)
            .collect()
    }

    const GOOD: &str = "FROM python:3.12-slim\nUSER 1000\n";

    #[test]
    fn a_clean_dockerfile_has_no_findings() {
        assert_eq!(rules(GOOD), Vec::<&str>::new());
        let multi = "FROM golang:1.22 AS build\nRUN go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\n";
        assert_eq!(rules(multi), Vec::<&str>::new());
    }

    #[test]
    fn every_rule_fires_on_its_case_and_the_bypasses_adde_missed() {
        let table: &[(&str, &str)] = &[
            // ADDE-B001: the socket mounted, however the instruction is written.
            ("FROM a:1\nRUN --mount=type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock docker ps\nUSER 1", "ADDE-B001"),
            ("FROM a:1\nrun --mount=type=bind,src=/run/docker.sock,dst=/s true\nUSER 1", "ADDE-B001"),
            ("FROM a:1\nRUN --mount=type=bind,\\\nsource=/var/run/docker.sock,target=/x \\\n  true\nUSER 1", "ADDE-B001"),
            ("# escape=`\nFROM a:1\nRUN --mount=type=bind,source=/var//run/../run/docker.sock,target=/x `\n  true\nUSER 1", "ADDE-B001"),
            // ADDE-B002
            ("FROM a:1\nVOLUME /var/run/docker.sock\nUSER 1", "ADDE-B002"),
            ("FROM a:1\nvolume [\"/data\", \"/run/docker.sock\"]\nUSER 1", "ADDE-B002"),
            // ADDE-B003
            ("FROM a:1\nCOPY /var/run/docker.sock /sock\nUSER 1", "ADDE-B003"),
            ("FROM a:1\nAdd [\"/run/docker.sock\", \"/x\"]\nUSER 1", "ADDE-B003"),
            // ADDE-B004, ADDE-B005
            ("FROM a:1\nRUN --security=insecure make\nUSER 1", "ADDE-B004"),
            ("FROM a:1\nRUN --network=host curl -o x http://a\nUSER 1", "ADDE-B005"),
            ("FROM a:1\nRUN \\\n --network=host true\nUSER 1", "ADDE-B005"),
            // ADDE-W001
            ("FROM a:1\nADD https://example.com/x.tgz /x\nUSER 1", "ADDE-W001"),
            // ADDE-W002, also inside a heredoc.
            ("FROM a:1\nRUN curl -fsSL https://x.sh | sh\nUSER 1", "ADDE-W002"),
            ("FROM a:1\nRUN wget -qO- https://x | sudo -E bash -s\nUSER 1", "ADDE-W002"),
            ("FROM a:1\nRUN <<EOF\nset -e\ncurl -s https://x | bash\nEOF\nUSER 1", "ADDE-W002"),
            // ADDE-W003
            ("FROM a:1\nENV API_TOKEN=abc\nUSER 1", "ADDE-W003"),
            ("FROM a:1\nARG db_password\nUSER 1", "ADDE-W003"),
            ("FROM a:1\nENV AWS_SECRET_ACCESS_KEY xyz\nUSER 1", "ADDE-W003"),
            // ADDE-W004
            ("FROM a:1\nRUN true", "ADDE-W004"),
            ("FROM a:1\nUSER 1000\nUSER root", "ADDE-W004"),
            ("FROM a:1 AS b\nUSER 1\nFROM a:2\nRUN x", "ADDE-W004"),
            // ADDE-W005
            ("FROM python\nUSER 1", "ADDE-W005"),
            ("from python:latest\nUSER 1", "ADDE-W005"),
            ("FROM 127.0.0.1:5000/img\nUSER 1", "ADDE-W005"),
        ];
        for (dockerfile, rule) in table {
            assert_eq!(rules(dockerfile), vec![*rule], "{dockerfile}");
        }
    }

    #[test]
    fn comments_and_innocent_mentions_are_not_findings() {
        let text = "# never mount /var/run/docker.sock here\nFROM a:1\n# RUN --mount=type=bind,source=/var/run/docker.sock\nRUN echo docker.sock is a file name && curl -o f https://x\nLABEL note=\"--network=host\"\nUSER 1\n";
        assert_eq!(rules(text), Vec::<&str>::new());
        let pinned = "FROM a@sha256:0123\nFROM $BASE\nFROM 127.0.0.1:5000/img:2\nADD --checksum=sha256:00ff https://x/y.tgz /y\nUSER 1";
        assert_eq!(rules(pinned), Vec::<&str>::new());
    }

    #[test]
    fn findings_carry_the_line_and_instruction() {
        let text = "FROM a:1\n\n# comment\nRUN --security=insecure \\\n    make\nUSER 1\n";
        let findings = check(&parse(text).unwrap());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].line, 4);
        assert_eq!(findings[0].severity, Severity::Block);
        assert_eq!(findings[0].instruction, "RUN make");
    }

    #[test]
    fn the_parser_handles_forms_heredocs_and_stages() {
        let text = "ARG V=1\nFROM a:$V AS one\nCOPY <<-EOT /etc/x\n\thello\n\tEOT\nRUN [\"sh\", \"-c\", \"echo hi\"]\nfrom b:2\ncmd echo done\n";
        let ins = parse(text).unwrap();
        let keys: Vec<(&str, usize)> = ins.iter().map(|i| (i.keyword.as_str(), i.stage)).collect();
        assert_eq!(
            keys,
            vec![
                ("ARG", 0),
                ("FROM", 0),
                ("COPY", 0),
                ("RUN", 0),
                ("FROM", 1),
                ("CMD", 1)
            ]
        );
        assert_eq!(ins[2].heredocs, vec!["hello\n".to_string()]);
        assert_eq!(
            ins[3].args,
            Args::Json(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(ins[5].line, 8);
        assert!(parse("FROM a\nRUN <<EOF\nnever closed\n").is_err());
        assert!(parse("# escape=x\nFROM a\n").is_err());
    }

    /// Found by the dockerfile fuzz target: a final `\` made an instruction with no keyword.
    #[test]
    fn a_continuation_into_the_end_of_the_file_is_no_instruction() {
        for text in ["FROM a\n\\\n", "FROM a\n  \\\n# c\n\n", "\\"] {
            for reading in [Reading::BuildKit, Reading::Classic] {
                let file = parse(text, reading).unwrap();
                assert!(
                    file.instructions.iter().all(|i| !i.keyword.is_empty()),
                    "{text:?}: {:?}",
                    file.instructions
                );
            }
        }
    }
}
