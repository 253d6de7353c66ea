//! A Dockerfile parser (directives, the escape character, line continuations, comments, JSON
//! and shell forms, flags, heredocs, case-insensitive instructions, stages) and the security
//! policy adde applies to it before a build. Rules have stable ids; a blocked Dockerfile never
//! reaches the engine. Rules look at parsed instructions, never at raw text, so a comment that
//! mentions docker.sock is not a finding and a continuation line cannot hide a flag.
//!
//! adde builds with the classic builder, which knows no heredocs and reads a heredoc's lines
//! as instructions; BuildKit reads them as the heredoc's text. The gate reads the file both
//! ways and checks both readings, so no line either builder runs hides from it, and blocks
//! heredocs outright. Checked values are expanded with the ARG and ENV values in scope, as
//! the builders expand them.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// How a builder reads `<<WORD` heredocs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The lines after the instruction, up to WORD, are the heredoc's text.
    BuildKit,
    /// No heredocs: the lines after the instruction are instructions.
    Classic,
}

/// A parsed Dockerfile.
#[derive(Debug)]
pub struct Dockerfile {
    /// The escape character (`\`, or `` ` `` from the escape directive).
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

/// One instruction, its continuation lines joined.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// Line where the instruction starts (1-based).
    pub line: usize,
    /// Upper-cased keyword: RUN, COPY, FROM, ...
    pub keyword: String,
    /// Leading `--name=value` flags, names lower-cased, values unquoted but not expanded.
    pub flags: Vec<(String, String)>,
    pub args: Args,
    /// Bodies of `<<WORD` heredocs, in order (BuildKit's reading only).
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

/// Instructions whose arguments may be a JSON array; for the others `[` is plain text.
const JSON_FORMS: &[&str] = &["RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "VOLUME", "SHELL"];

/// Instructions BuildKit reads heredocs for.
const HEREDOC_INSTRUCTIONS: &[&str] = &["RUN", "COPY", "ADD"];

#[derive(Debug)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a Dockerfile as the given builder reads it.
pub fn parse(text: &str, reading: Reading) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
        let (flags, rest) = split_flags(rest);
        let args = parse_args(&keyword, rest);
        let heredocs = match &args {
            Args::Shell(text)
                if reading == Reading::BuildKit
                    && HEREDOC_INSTRUCTIONS.contains(&keyword.as_str()) =>
            {
                let (bodies, next) = read_heredocs(text, &lines, i, start)?;
                i = next;
                bodies
            }
            _ => Vec::new(),
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
            args,
            heredocs,
            stage,
        });
    }
    Ok(Dockerfile {
        escape,
        instructions,
    })
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

/// Leading `--name=value` flags as the builders extract them: quotes removed, `\` escapes a
/// character, a bare `--` ends the flags. Returns them and the rest of the line.
fn split_flags(line: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    let mut rest = line.trim_start();
    while rest.starts_with("--") {
        let mut word = String::new();
        let mut quote = None;
        let mut end = rest.len();
        let mut chars = rest.char_indices();
        while let Some((at, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    end = at;
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => word.extend(chars.next().map(|(_, next)| next)),
                _ => word.push(c),
            }
        }
        rest = rest[end..].trim_start();
        let Some(flag) = word.strip_prefix("--").filter(|f| !f.is_empty()) else {
            break;
        };
        let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
        flags.push((name.to_ascii_lowercase(), value.to_string()));
    }
    (flags, rest)
}

fn parse_args(keyword: &str, rest: &str) -> Args {
    let trimmed = rest.trim();
    if trimmed.starts_with('[') && JSON_FORMS.contains(&keyword) {
        if let Ok(items) = serde_json::from_str::<Vec<String>>(trimmed) {
            return Args::Json(items);
        }
    }
    Args::Shell(trimmed.to_string())
}

/// A heredoc a line opens: its terminating word, and whether leading tabs are stripped.
struct Heredoc {
    word: String,
    strip_tabs: bool,
}

/// The heredocs a shell-form line opens, as BuildKit finds them: a word that starts with
/// `<<` or `<<-` (after an optional fd number) and names a terminator; `<<<` is not one.
fn heredoc_markers(text: &str) -> Vec<Heredoc> {
    text.split_whitespace()
        .filter_map(|word| {
            let word = word
                .trim_start_matches(['"', '\''])
                .trim_start_matches(|c: char| c.is_ascii_digit());
            let after = word.strip_prefix("<<").filter(|a| !a.starts_with('<'))?;
            let strip_tabs = after.starts_with('-');
            let name: String = after
                .trim_start_matches('-')
                .chars()
                .filter(|c| *c != '"' && *c != '\'')
                .collect();
            (!name.is_empty()).then_some(Heredoc {
                word: name,
                strip_tabs,
            })
        })
        .collect()
}

/// Reads the bodies of the heredocs a line opens, which follow it; returns them and the
/// index of the line after the last one.
fn read_heredocs(
    text: &str,
    lines: &[&str],
    mut i: usize,
    start: usize,
) -> Result<(Vec<String>, usize), ParseError> {
    let mut bodies = Vec::new();
    for heredoc in heredoc_markers(text) {
        let mut body = String::new();
        loop {
            let Some(line) = lines.get(i) else {
                return Err(ParseError {
                    line: start + 1,
                    message: format!(
                        "heredoc <<{} is never closed (and the classic builder adde uses does not support heredocs)",
                        heredoc.word
                    ),
                });
            };
            i += 1;
            let line = if heredoc.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if line.trim_end() == heredoc.word {
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        bodies.push(body);
    }
    Ok((bodies, i))
}

/// Splits on whitespace outside quotes, keeping quotes and escapes in the words: how the
/// builders split LABEL, ENV and ARG arguments before expanding each word.
fn raw_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    // A quoted empty word ("") is still a word.
    let mut quoted = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if quoted || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                quoted = false;
                continue;
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                quoted = true;
            }
            Some(q) if c == q => quote = None,
            _ => {}
        }
        let escapes = c == escape && quote != Some('\'');
        word.push(c);
        if escapes {
            match chars.next() {
                Some(next) => word.push(next),
                None => {
                    word.pop();
                }
            }
        }
    }
    if quoted || !word.is_empty() {
        words.push(word);
    }
    words
}

/// `key=value ...` pairs, or the legacy `key value` form, split as the builders split LABEL
/// and ENV; keys and values are raw, still to be expanded.
fn name_values(text: &str, escape: char) -> Vec<(String, String)> {
    let words = raw_words(text, escape);
    match words.first() {
        None => Vec::new(),
        Some(first) if !first.contains('=') => {
            let text = text.trim();
            let (key, value) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
            vec![(key.to_string(), value.trim_start().to_string())]
        }
        Some(_) => words
            .iter()
            .map(|w| {
                let (key, value) = w.split_once('=').unwrap_or((w, ""));
                (key.to_string(), value.to_string())
            })
            .collect(),
    }
}

/// What the gate knows of the variables in scope at an instruction.
#[derive(Debug, Clone, Default)]
struct Scope {
    /// ENV values set by this file in the stage or the stages it is built on: (value, certain).
    env: HashMap<String, (String, bool)>,
    /// ARG values of the stage (or the global ARGs before the first FROM).
    args: HashMap<String, (String, bool)>,
    /// Whether the base image's ENV is known: FROM scratch, or a stage of this file built on
    /// it. Otherwise any name this file does not ENV may come from the base image, whose ENV
    /// also wins over an ARG of the same name.
    base_known: bool,
}

impl Scope {
    fn known() -> Scope {
        Scope {
            base_known: true,
            ..Scope::default()
        }
    }

    /// The value of a variable (None when unset) and whether the gate is certain of it.
    fn lookup(&self, name: &str) -> (Option<&str>, bool) {
        if let Some((value, certain)) = self.env.get(name) {
            return (Some(value), *certain);
        }
        let arg = self.args.get(name);
        let certain = self.base_known && arg.is_none_or(|(_, certain)| *certain);
        (arg.map(|(value, _)| value.as_str()), certain)
    }
}

/// A word as the builders process it: quotes removed, escapes applied, `$X`, `${X}`,
/// `${X:-word}`, `${X:+word}` (and the forms without `:`) expanded.
#[derive(Debug)]
struct Expanded {
    text: String,
    /// False when something the gate cannot know went into the text (a variable the base
    /// image may set, a substitution it does not model): the text is then a best guess.
    certain: bool,
}

fn expand(word: &str, escape: char, scope: &Scope) -> Expanded {
    let mut lexer = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        scope,
        certain: true,
    };
    let text = lexer.until(None);
    Expanded {
        text,
        certain: lexer.certain,
    }
}

/// A port of the builders' word lexer (moby/buildkit's shell.Lex).
struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    scope: &'a Scope,
    certain: bool,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes the word up to `stop` (consumed) or its end.
    fn until(&mut self, stop: Option<char>) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return out;
            }
            match c {
                '\'' => self.single_quoted(&mut out),
                '"' => self.double_quoted(&mut out),
                '$' => self.dollar(&mut out),
                _ => {
                    self.pos += 1;
                    if c != self.escape {
                        out.push(c);
                    } else if let Some(next) = self.next() {
                        out.push(next);
                    }
                }
            }
        }
        if stop.is_some() {
            // A missing '}': the builder refuses the word.
            self.certain = false;
        }
        out
    }

    fn single_quoted(&mut self, out: &mut String) {
        self.pos += 1;
        loop {
            match self.next() {
                Some('\'') => return,
                Some(c) => out.push(c),
                None => {
                    self.certain = false;
                    return;
                }
            }
        }
    }

    fn double_quoted(&mut self, out: &mut String) {
        self.pos += 1;
        loop {
            match self.peek() {
                None => {
                    self.certain = false;
                    return;
                }
                Some('"') => {
                    self.pos += 1;
                    return;
                }
                Some('$') => self.dollar(out),
                Some(c) => {
                    self.pos += 1;
                    if c == self.escape {
                        match self.peek() {
                            None => {}
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                self.pos += 1;
                                out.push(next);
                            }
                            Some(_) => out.push(c),
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
        }
    }

    fn dollar(&mut self, out: &mut String) {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                out.push('$');
            } else {
                out.push_str(&self.value(&name).unwrap_or_default());
            }
            return;
        }
        self.pos += 1;
        let name = self.name();
        let (colon, modifier) = match self.next() {
            Some('}') if !name.is_empty() => {
                out.push_str(&self.value(&name).unwrap_or_default());
                return;
            }
            Some(':') => (true, self.next()),
            Some(m @ ('-' | '+')) => (false, Some(m)),
            _ => (false, None),
        };
        let word = self.until(Some('}'));
        let value = self.value(&name);
        let set = match colon {
            true => value.as_deref().is_some_and(|v| !v.is_empty()),
            false => value.is_some(),
        };
        match modifier {
            Some('-') if set => out.push_str(&value.unwrap_or_default()),
            Some('-') => out.push_str(&word),
            Some('+') if set => out.push_str(&word),
            Some('+') => {}
            // `${X:?err}`, `${X#pattern}`, a bad substitution: not modelled.
            _ => self.certain = false,
        }
    }

    /// A variable name: letters, digits and `_`, or one special parameter.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                self.pos += 1;
                name.push(c);
            }
            _ => {
                while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
                    name.push(c);
                    self.pos += 1;
                }
            }
        }
        name
    }

    fn value(&mut self, name: &str) -> Option<String> {
        let (value, certain) = self.scope.lookup(name);
        self.certain &= certain;
        value.map(str::to_string)
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Block,
}

/// Declares the policy's rules: variant, stable id, severity and what the rule is about, in
/// one place, so a rule cannot be used without its severity.
macro_rules! rules {
    ($($variant:ident = $id:literal, $severity:ident, $what:literal;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Rule {
            $($variant,)*
        }

        impl Rule {
            #[cfg(test)]
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            pub fn id(self) -> &'static str {
                match self {
                    $(Rule::$variant => $id,)*
                }
            }

            pub fn severity(self) -> Severity {
                match self {
                    $(Rule::$variant => Severity::$severity,)*
                }
            }

            /// What the rule is about, as the README's table says it.
            pub fn description(self) -> &'static str {
                match self {
                    $(Rule::$variant => $what,)*
                }
            }
        }
    };
}

rules! {
    SocketMount = "ADDE-B001", Block, "`RUN --mount` of the Docker socket";
    SocketVolume = "ADDE-B002", Block, "`VOLUME` on the Docker socket";
    SocketCopy = "ADDE-B003", Block, "`COPY`/`ADD` of the Docker socket";
    InsecureStep = "ADDE-B004", Block, "`RUN --security=insecure`";
    HostNetwork = "ADDE-B005", Block, "`RUN --network=host`";
    ReservedLabel = "ADDE-B006", Block, "a `LABEL` key in adde's `io.adde.` namespace";
    RemoteAdd = "ADDE-B007", Block, "`ADD` from a URL or a git repository";
    Heredoc = "ADDE-B008", Block, "a heredoc, which the classic builder does not support";
    UnverifiedAdd = "ADDE-W001", Warning, "remote `ADD` without `--checksum`";
    PipeToShell = "ADDE-W002", Warning, "a download piped into a shell";
    SecretName = "ADDE-W003", Warning, "a secret-looking `ENV`/`ARG` name";
    RootUser = "ADDE-W004", Warning, "the final stage runs as root";
    UnpinnedBase = "ADDE-W005", Warning, "an unpinned or `latest` base image";
    HostNetworkBuild = "ADDE-W006", Warning, "the build's `network: \"host\"` lets RUN steps reach the host's loopback services";
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub line: usize,
    pub instruction: String,
    pub message: String,
}

fn finding(rule: Rule, ins: &Instruction, message: String) -> Finding {
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
        severity: rule.severity(),
        line: ins.line,
        instruction: text,
        message,
    }
}

/// What the caller's build allows, and the build args that set ARG values.
pub struct Policy<'a> {
    /// ADD from URLs and git repositories (still warned about without --checksum).
    pub allow_remote_add: bool,
    pub build_args: &'a BTreeMap<String, String>,
}

/// Reads the Dockerfile as BuildKit and as the classic builder would and applies the policy
/// to both readings; findings are in line order, each once.
pub fn gate(text: &str, policy: &Policy) -> Result<Vec<Finding>, ParseError> {
    let mut findings = check(&parse(text, Reading::BuildKit)?, policy);
    // The readings differ only where there are heredocs, which are blocked anyway; a file the
    // classic builder cannot parse never runs on it.
    if let Ok(classic) = parse(text, Reading::Classic) {
        findings.extend(check(&classic, policy));
    }
    findings.sort_by(|a, b| (a.line, a.rule, &a.message).cmp(&(b.line, b.rule, &b.message)));
    findings.dedup_by(|a, b| a.line == b.line && a.rule == b.rule && a.message == b.message);
    Ok(findings)
}

/// Whether a path is the Docker socket, however it is spelled.
fn is_docker_socket(path: &str) -> bool {
    let parts = crate::paths::lexical_parts(path.trim().trim_matches(|c| c == '"' || c == '\''));
    parts.last() == Some(&"docker.sock")
}

/// A label key adde's own labels use: those mark what adde made and what it may remove.
pub fn is_reserved_label(key: &str) -> bool {
    key.trim()
        .get(..8)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("io.adde."))
}

/// Whether an ADD source is fetched from the network: a URL, or a git repository.
fn is_remote(source: &str) -> bool {
    let lower = source.to_ascii_lowercase();
    lower.contains("://") || lower.starts_with("git@") || lower.starts_with("github.com/")
}

const UNRESOLVED: &str =
    "uses a variable the gate cannot resolve (the base image may set it), so it cannot be checked";

/// Applies the policy to one reading of a Dockerfile.
fn check(file: &Dockerfile, policy: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    let stage_names: Vec<String> = file
        .instructions
        .iter()
        .filter(|i| i.keyword == "FROM")
        .filter_map(stage_name)
        .collect();
    // The global ARGs before the first FROM, then each stage's variables.
    let mut scope = Scope::known();
    let mut globals = None;
    let mut stages: HashMap<String, Scope> = HashMap::new();
    let mut current_stage: Option<String> = None;
    for ins in &file.instructions {
        match ins.keyword.as_str() {
            "FROM" => {
                let globals = globals.get_or_insert_with(|| scope.clone());
                if let Some(name) = current_stage.take() {
                    stages.insert(name, scope.clone());
                }
                let image = ins.args.words().first().map_or(String::new(), |w| {
                    expand(w, file.escape, globals).text.to_ascii_lowercase()
                });
                scope = match stages.get(&image) {
                    Some(stage) => Scope {
                        args: HashMap::new(),
                        ..stage.clone()
                    },
                    None if image == "scratch" => Scope::known(),
                    None => Scope::default(),
                };
                current_stage = stage_name(ins);
                check_base_image(ins, &stage_names, &mut findings);
            }
            "ARG" => {
                for word in raw_words(&ins.args.text(), file.escape) {
                    let (name, default) = match word.split_once('=') {
                        Some((name, default)) => (name, Some(default)),
                        None => (word.as_str(), None),
                    };
                    let value = match (policy.build_args.get(name), default) {
                        (Some(given), _) => Some((given.clone(), true)),
                        (None, Some(default)) => {
                            let e = expand(default, file.escape, &scope);
                            Some((e.text, e.certain))
                        }
                        // `ARG NAME` in a stage takes the global ARG's value.
                        (None, None) => globals.as_ref().and_then(|g| g.args.get(name).cloned()),
                    };
                    if let Some(value) = value {
                        scope.args.insert(name.to_string(), value);
                    }
                }
                check_secret_names(ins, file.escape, &mut findings);
            }
            "ENV" => {
                for (key, value) in name_values(&ins.args.text(), file.escape) {
                    let key = expand(&key, file.escape, &scope).text;
                    let value = expand(&value, file.escape, &scope);
                    scope.env.insert(key, (value.text, value.certain));
                }
                check_secret_names(ins, file.escape, &mut findings);
            }
            _ => check_instruction(ins, file.escape, &scope, policy, &mut findings),
        }
    }
    check_final_user(&file.instructions, &mut findings);
    findings
}

/// The `AS name` of a FROM, lower-cased.
fn stage_name(from: &Instruction) -> Option<String> {
    let words = from.args.words();
    let pos = words.iter().position(|w| w.eq_ignore_ascii_case("as"))?;
    words.get(pos + 1).map(|n| n.to_ascii_lowercase())
}

/// The rules on a RUN, VOLUME, COPY, ADD, LABEL or ONBUILD instruction.
fn check_instruction(
    ins: &Instruction,
    escape: char,
    scope: &Scope,
    policy: &Policy,
    findings: &mut Vec<Finding>,
) {
    let mut add = |rule: Rule, message: String| findings.push(finding(rule, ins, message));
    let shell_heredocs = match &ins.args {
        Args::Shell(text) if HEREDOC_INSTRUCTIONS.contains(&ins.keyword.as_str()) => {
            heredoc_markers(text)
        }
        _ => Vec::new(),
    };
    if let Some(heredoc) = shell_heredocs.first() {
        add(Rule::Heredoc, format!("<<{} is a heredoc: the classic builder adde uses does not support heredocs and would run its lines as instructions; put the script in a file in the context and COPY it", heredoc.word));
    }
    // Words as the builders split and expand paths: on whitespace, then each word expanded.
    let paths = || -> Vec<Expanded> {
        match &ins.args {
            Args::Json(items) => items.iter().map(|i| expand(i, escape, scope)).collect(),
            Args::Shell(text) => text
                .split_whitespace()
                .map(|w| expand(w, escape, scope))
                .collect(),
        }
    };
    match ins.keyword.as_str() {
        "RUN" => {
            for (name, raw) in &ins.flags {
                let value = expand(raw, escape, scope);
                let (rule, what) = match name.as_str() {
                    "mount" if mount_touches_socket(&value.text) => (
                        Rule::SocketMount,
                        "mounts the Docker socket: it would give the build control of the engine",
                    ),
                    "security" if value.text.trim().eq_ignore_ascii_case("insecure") => {
                        (Rule::InsecureStep, "runs the step without the sandbox")
                    }
                    "network" if value.text.trim().eq_ignore_ascii_case("host") => {
                        (Rule::HostNetwork, "gives the step the host's network")
                    }
                    "mount" if !value.certain => (Rule::SocketMount, UNRESOLVED),
                    "security" if !value.certain => (Rule::InsecureStep, UNRESOLVED),
                    "network" if !value.certain => (Rule::HostNetwork, UNRESOLVED),
                    _ => continue,
                };
                add(rule, format!("--{name}={raw} {what}"));
            }
            let scripts = std::iter::once(ins.args.text()).chain(ins.heredocs.iter().cloned());
            if scripts.into_iter().any(|s| pipes_download_into_shell(&s)) {
                add(Rule::PipeToShell, "pipes a download into a shell: download to a file and verify its checksum first".into());
            }
        }
        "VOLUME" if paths().iter().any(|w| is_docker_socket(&w.text)) => {
            add(
                Rule::SocketVolume,
                "declares a volume on the Docker socket".into(),
            );
        }
        "COPY" | "ADD" => {
            let words = paths();
            if words.iter().any(|w| is_docker_socket(&w.text)) {
                add(
                    Rule::SocketCopy,
                    "copies the Docker socket into the image".into(),
                );
            }
            let sources = &words[..words.len().saturating_sub(1)];
            let from_network = |w: &&Expanded| is_remote(&w.text);
            if ins.keyword == "ADD" && !policy.allow_remote_add {
                if let Some(source) = sources.iter().find(from_network) {
                    add(Rule::RemoteAdd, format!("adds {} from the network: the engine fetches it from the host, past the build's network setting; download it in a RUN step, or allow it with \"allow_remote_add\": true", source.text));
                } else if sources.iter().any(|w| !w.certain) {
                    add(
                        Rule::RemoteAdd,
                        format!("a source {UNRESOLVED}; it may be a URL"),
                    );
                }
            } else if ins.keyword == "ADD"
                && sources.iter().any(|w| from_network(&w))
                && !ins.flags.iter().any(|(name, _)| name == "checksum")
            {
                add(
                    Rule::UnverifiedAdd,
                    "adds a remote file without --checksum=sha256:...; its content is not verified"
                        .into(),
                );
            }
        }
        "LABEL" => {
            for (key, _) in name_values(&ins.args.text(), escape) {
                let expanded = expand(&key, escape, scope);
                if is_reserved_label(&expanded.text) {
                    add(Rule::ReservedLabel, format!("sets label {}: io.adde.* labels are adde's own, and mark what adde made and may remove", expanded.text));
                } else if !expanded.certain {
                    add(Rule::ReservedLabel, format!("label key {key} {UNRESOLVED}"));
                }
            }
        }
        "ONBUILD" => {
            // A trigger runs in a later build FROM this image, with variables the gate
            // cannot know; it is checked like an instruction of this file.
            if let Ok(trigger) = parse(&ins.args.text(), Reading::Classic) {
                for mut inner in trigger.instructions {
                    inner.line = ins.line;
                    match inner.keyword.as_str() {
                        "ARG" | "ENV" => check_secret_names(&inner, escape, findings),
                        _ => check_instruction(&inner, escape, &Scope::default(), policy, findings),
                    }
                }
            }
        }
        _ => {}
    }
}

/// Whether a `--mount` value names the Docker socket in any of its fields.
fn mount_touches_socket(mount: &str) -> bool {
    mount.split(',').any(|field| {
        let value = field.split_once('=').map_or(field, |(_, v)| v);
        is_docker_socket(value)
    })
}

/// ADDE-W005: an external base image with no tag, or `latest`.
fn check_base_image(from: &Instruction, stage_names: &[String], findings: &mut Vec<Finding>) {
    let words = from.args.words();
    let Some(image) = words.first() else { return };
    let lower = image.to_ascii_lowercase();
    if stage_names.contains(&lower) || lower == "scratch" || image.contains(['$', '@']) {
        return;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    let why = match last.split_once(':') {
        None => "has no tag",
        Some((_, "latest")) => "uses latest",
        Some(_) => return,
    };
    findings.push(finding(
        Rule::UnpinnedBase,
        from,
        format!("{image} {why}: pin a version (or a digest)"),
    ));
}

/// ADDE-W003: secret-looking names an ENV or ARG declares.
fn check_secret_names(ins: &Instruction, escape: char, findings: &mut Vec<Finding>) {
    let names: Vec<String> = match ins.keyword.as_str() {
        "ENV" => name_values(&ins.args.text(), escape)
            .into_iter()
            .map(|(key, _)| key)
            .collect(),
        _ => raw_words(&ins.args.text(), escape)
            .into_iter()
            .map(|w| w.split('=').next().unwrap_or_default().to_string())
            .collect(),
    };
    for name in names.into_iter().filter(|n| looks_secret(n)) {
        findings.push(finding(Rule::SecretName, ins, format!("{name} looks like a secret: it stays in the image's history; use a build secret instead")));
    }
}

/// ADDE-W004: the final stage has no USER, or its last USER is root.
fn check_final_user(instructions: &[Instruction], findings: &mut Vec<Finding>) {
    let Some(last_stage) = instructions.iter().map(|i| i.stage).max() else {
        return;
    };
    let in_last = |keyword: &'static str| {
        move |i: &&Instruction| i.stage == last_stage && i.keyword == keyword
    };
    let final_from = instructions.iter().find(in_last("FROM"));
    match (instructions.iter().rev().find(in_last("USER")), final_from) {
        (Some(user), _) => {
            let name = user.args.words().first().cloned().unwrap_or_default();
            let who = name.split(':').next().unwrap_or("");
            if who == "root" || who == "0" {
                findings.push(finding(
                    Rule::RootUser,
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
            findings.push(finding(
                Rule::RootUser,
                from,
                "the final stage sets no USER, so it runs as root unless the base image sets one"
                    .into(),
            ));
        }
        _ => {}
    }
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

    fn gate_with(dockerfile: &str, allow_remote_add: bool, args: &[(&str, &str)]) -> Vec<Finding> {
        let build_args: BTreeMap<String, String> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let policy = Policy {
            allow_remote_add,
            build_args: &build_args,
        };
        gate(dockerfile, &policy).expect("parses")
    }

    fn rules(dockerfile: &str) -> Vec<&'static str> {
        ids(&gate_with(dockerfile, false, &[]))
    }

    fn ids(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.rule.id()).collect()
    }

    fn instructions(text: &str) -> Vec<Instruction> {
        parse(text, Reading::BuildKit).expect("parses").instructions
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
            ("FROM a:1\nRUN --mount=\"type=bind,source=/var/run/docker.sock\" true\nUSER 1", "ADDE-B001"),
            ("FROM a:1\nARG S=/var/run/docker.sock\nRUN --mount=type=bind,source=${S},target=/s true\nUSER 1", "ADDE-B001"),
            ("FROM a:1\nRUN --mount=type=bind,source=$FROM_BASE,target=/s true\nUSER 1", "ADDE-B001"),
            // ADDE-B002
            ("FROM a:1\nVOLUME /var/run/docker.sock\nUSER 1", "ADDE-B002"),
            ("FROM a:1\nvolume [\"/data\", \"/run/docker.sock\"]\nUSER 1", "ADDE-B002"),
            ("FROM a:1\nENV D=/var/run\nVOLUME ${D}/docker.sock\nUSER 1", "ADDE-B002"),
            ("FROM a:1\nVOLUME ${UNSET:-/run/docker.sock}\nUSER 1", "ADDE-B002"),
            ("FROM a:1\nVOLUME \"/var/run/docker.sock\"\nUSER 1", "ADDE-B002"),
            // ADDE-B003
            ("FROM a:1\nCOPY /var/run/docker.sock /sock\nUSER 1", "ADDE-B003"),
            ("FROM a:1\nAdd [\"/run/docker.sock\", \"/x\"]\nUSER 1", "ADDE-B003"),
            // ADDE-B004, ADDE-B005
            ("FROM a:1\nRUN --security=insecure make\nUSER 1", "ADDE-B004"),
            ("FROM a:1\nRUN --network=host curl -o x http://a\nUSER 1", "ADDE-B005"),
            ("FROM a:1\nRUN \\\n --network=host true\nUSER 1", "ADDE-B005"),
            ("FROM a:1\nRUN --network=$FROM_BASE true\nUSER 1", "ADDE-B005"),
            // ADDE-B006: adde's labels, however the key is spelled.
            ("FROM a:1\nLABEL io.adde.managed=true\nUSER 1", "ADDE-B006"),
            ("FROM a:1\nLABEL a=b \"io.adde.volumes\"=victim\nUSER 1", "ADDE-B006"),
            ("FROM a:1\nLABEL 'io.adde.kind'='image'\nUSER 1", "ADDE-B006"),
            ("FROM a:1\nLABEL io.adde.volumes victim volume\nUSER 1", "ADDE-B006"),
            ("FROM a:1\nLABEL a=b \\\n  io.adde.volumes=victim\nUSER 1", "ADDE-B006"),
            ("FROM a:1\nLABEL io\\.adde\\.volumes=victim\nUSER 1", "ADDE-B006"),
            ("FROM a:1\nLABEL IO.ADDE.managed=true\nUSER 1", "ADDE-B006"),
            ("FROM scratch\nARG NS=io.adde\nLABEL ${NS}.volumes=victim\nUSER 1", "ADDE-B006"),
            ("FROM scratch\nENV K=io.adde.volumes\nLABEL \"$K\"=victim\nUSER 1", "ADDE-B006"),
            ("FROM a:1\nLABEL $FROM_BASE=victim\nUSER 1", "ADDE-B006"),
            ("FROM a:1\nONBUILD LABEL io.adde.managed=true\nUSER 1", "ADDE-B006"),
            // ADDE-B007: ADD fetches on the host, whatever the build's network.
            ("FROM a:1\nADD http://127.0.0.1:8000/secret /s\nUSER 1", "ADDE-B007"),
            ("FROM a:1\nADD --checksum=sha256:00 https://example.com/x.tgz /x\nUSER 1", "ADDE-B007"),
            ("FROM a:1\nADD git@github.com:user/repo.git /src\nUSER 1", "ADDE-B007"),
            ("FROM a:1\nADD github.com/moby/moby /src\nUSER 1", "ADDE-B007"),
            ("FROM a:1\nadd [\"HTTP://10.0.0.1/x\", \"/x\"]\nUSER 1", "ADDE-B007"),
            ("FROM scratch\nARG URL=http://127.0.0.1/x\nADD $URL /x\nUSER 1", "ADDE-B007"),
            ("FROM a:1\nADD $FROM_BASE /x\nUSER 1", "ADDE-B007"),
            // ADDE-B008
            ("FROM a:1\nCOPY <<EOF /etc/x\nhello\nEOF\nUSER 1", "ADDE-B008"),
            // ADDE-W002
            ("FROM a:1\nRUN curl -fsSL https://x.sh | sh\nUSER 1", "ADDE-W002"),
            ("FROM a:1\nRUN wget -qO- https://x | sudo -E bash -s\nUSER 1", "ADDE-W002"),
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
        let text = "# never mount /var/run/docker.sock here\nFROM a:1\n# RUN --mount=type=bind,source=/var/run/docker.sock\nRUN echo docker.sock is a file name && curl -o f https://x\nLABEL note=\"--network=host\" io.adde=x org.io.adde.x=y\nUSER 1\n";
        assert_eq!(rules(text), Vec::<&str>::new());
        let pinned = "FROM a@sha256:0123\nFROM $BASE\nFROM 127.0.0.1:5000/img:2\nCOPY --from=0 /a $HOME/b\nRUN cat <<<\"here-string\"\nUSER 1";
        assert_eq!(rules(pinned), Vec::<&str>::new());
        // A variable that only the Dockerfile sets is resolved, not guessed at.
        let resolved = "FROM scratch\nARG NET=none\nENV NS=org.example\nRUN --network=$NET true\nLABEL $NS.team=ml\nADD ./$NS.tgz /x\nUSER 1";
        assert_eq!(rules(resolved), Vec::<&str>::new());
    }

    #[test]
    fn build_args_set_arg_values_but_not_env() {
        let text = "FROM scratch\nARG NET=none\nRUN --network=$NET true\nUSER 1";
        assert_eq!(
            ids(&gate_with(text, false, &[("NET", "host")])),
            ["ADDE-B005"]
        );
        let env_wins = "FROM scratch\nARG NET\nENV NET=none\nRUN --network=$NET true\nUSER 1";
        assert!(gate_with(env_wins, false, &[("NET", "host")]).is_empty());
        let global = "ARG K=io.adde.volumes\nFROM scratch\nARG K\nLABEL $K=victim\nUSER 1";
        assert_eq!(rules(global), ["ADDE-B006"]);
        // A stage built on an earlier stage keeps that stage's ENV.
        let staged = "FROM scratch AS one\nENV K=io.adde.kind\nFROM one\nLABEL $K=image\nUSER 1";
        assert_eq!(rules(staged), ["ADDE-B006"]);
    }

    #[test]
    fn remote_add_is_allowed_only_when_asked_and_still_warned_without_checksum() {
        let text = "FROM a:1\nADD https://example.com/x.tgz /x\nUSER 1";
        assert_eq!(ids(&gate_with(text, true, &[])), ["ADDE-W001"]);
        let checked = "FROM a:1\nADD --checksum=sha256:00ff https://x/y.tgz /y\nUSER 1";
        assert!(gate_with(checked, true, &[]).is_empty());
        assert!(rules("FROM a:1\nADD ./local.tgz /x\nCOPY https://x /y\nUSER 1").is_empty());
    }

    #[test]
    fn heredocs_are_blocked_and_their_lines_checked_as_the_classic_builder_reads_them() {
        // The attack: BuildKit reads the VOLUME as heredoc text, the classic builder as an
        // instruction.
        let text = "FROM a:1\nRUN <<EOF\nVOLUME /var/run/docker.sock\nEOF\nUSER 1";
        let findings = gate_with(text, false, &[]);
        assert_eq!(ids(&findings), ["ADDE-B008", "ADDE-B002"]);
        assert!(
            findings[0].message.contains("classic builder"),
            "{findings:?}"
        );
        assert_eq!(findings[1].line, 3);
        // What BuildKit runs is checked too.
        let piped = "FROM a:1\nRUN <<EOF\nset -e\ncurl -s https://x | bash\nEOF\nUSER 1";
        assert_eq!(rules(piped), ["ADDE-B008", "ADDE-W002"]);
        let classic = parse(text, Reading::Classic).unwrap().instructions;
        let keywords: Vec<&str> = classic.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(keywords, ["FROM", "RUN", "VOLUME", "EOF", "USER"]);
        // A body the classic builder cannot parse never runs there; the heredoc still blocks.
        assert_eq!(
            rules("FROM a:1\nRUN <<EOF\n[ -f x ] && y\nEOF\nUSER 1"),
            ["ADDE-B008"]
        );
        let unclosed = parse("FROM a\nRUN <<EOF\nnever closed\n", Reading::BuildKit).unwrap_err();
        assert!(
            unclosed.message.contains("classic builder"),
            "{}",
            unclosed.message
        );
    }

    #[test]
    fn findings_carry_the_line_and_instruction() {
        let text = "FROM a:1\n\n# comment\nRUN --security=insecure \\\n    make\nUSER 1\n";
        let findings = gate_with(text, false, &[]);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].line, 4);
        assert_eq!(findings[0].severity, Severity::Block);
        assert_eq!(findings[0].instruction, "RUN make");
        let json = serde_json::to_value(&findings[0]).unwrap();
        assert_eq!(json["rule"], "ADDE-B004");
        assert_eq!(json["severity"], "block");
    }

    #[test]
    fn rules_have_unique_ids_and_the_readme_lists_each_one() {
        let readme = include_str!("../README.md");
        let mut seen = std::collections::HashSet::new();
        for rule in Rule::ALL {
            assert!(seen.insert(rule.id()), "{} twice", rule.id());
            let severity = match rule.severity() {
                Severity::Block => "block",
                Severity::Warning => "warning",
            };
            assert_eq!(&rule.id()[5..6], &severity[..1].to_uppercase());
            let row = format!("| {} | {severity} | {}", rule.id(), rule.description());
            assert!(readme.contains(&row), "README lacks the row {row:?}");
        }
    }

    #[test]
    fn words_are_split_and_expanded_like_the_builders_do() {
        let mut scope = Scope::known();
        scope.env.insert("A".into(), ("x y".into(), true));
        let e = |w: &str| expand(w, '\\', &scope).text;
        assert_eq!(e("$A"), "x y");
        assert_eq!(e("${A}/z"), "x y/z");
        assert_eq!(e("'$A'"), "$A");
        assert_eq!(e("\"$A\""), "x y");
        assert_eq!(e("\\$A"), "$A");
        assert_eq!(e("${B:-d}"), "d");
        assert_eq!(e("${A:+set}${B:+set}"), "set");
        assert_eq!(e("a\\.b"), "a.b");
        assert_eq!(e("$"), "$");
        assert!(!expand("${A#x}", '\\', &scope).certain);
        assert!(!expand("$B", '\\', &Scope::default()).certain);
        assert_eq!(
            raw_words("a=\"b c\" 'd e'=f g\\ h", '\\'),
            ["a=\"b c\"", "'d e'=f", "g\\ h"]
        );
        assert_eq!(
            split_flags("--mount=\"type=bind, src=/s\" --network=host -- --x cmd"),
            (
                vec![
                    ("mount".to_string(), "type=bind, src=/s".to_string()),
                    ("network".to_string(), "host".to_string())
                ],
                "--x cmd"
            )
        );
    }

    #[test]
    fn the_parser_handles_forms_heredocs_and_stages() {
        let text = "ARG V=1\nFROM a:$V AS one\nCOPY <<-EOT /etc/x\n\thello\n\tEOT\nRUN [\"sh\", \"-c\", \"echo hi\"]\nfrom b:2\ncmd echo done\nLABEL [\"not\", \"json\"]\n";
        let ins = instructions(text);
        let keys: Vec<(&str, usize)> = ins.iter().map(|i| (i.keyword.as_str(), i.stage)).collect();
        assert_eq!(
            keys,
            vec![
                ("ARG", 0),
                ("FROM", 0),
                ("COPY", 0),
                ("RUN", 0),
                ("FROM", 1),
                ("CMD", 1),
                ("LABEL", 1)
            ]
        );
        assert_eq!(ins[2].heredocs, vec!["hello\n".to_string()]);
        assert_eq!(
            ins[3].args,
            Args::Json(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(ins[5].line, 8);
        assert!(matches!(ins[6].args, Args::Shell(_)));
        assert!(parse("# escape=x\nFROM a\n", Reading::BuildKit).is_err());
        assert_eq!(instructions("\u{feff}FROM a:1\n")[0].keyword, "FROM");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Dockerfile-shaped text: keywords, flags, quotes, variables, continuations, heredocs.
        fn dockerfile_text() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("FROM a:1".to_string()),
                Just("RUN".to_string()),
                Just("LABEL".to_string()),
                Just("ADD".to_string()),
                Just("--mount=type=bind,source=".to_string()),
                Just("/var/run/docker.sock".to_string()),
                Just("io.adde.x=y".to_string()),
                Just("<<EOF".to_string()),
                Just("EOF".to_string()),
                Just("\\\n".to_string()),
                Just("\n".to_string()),
                Just("${X:-".to_string()),
                Just("}".to_string()),
                Just("\"".to_string()),
                Just("'".to_string()),
                Just("$".to_string()),
                Just("# escape=`\n".to_string()),
                "\\PC{0,6}",
            ];
            prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.join(" "))
        }

        fn verdict(text: &str) -> Option<Vec<&'static str>> {
            let build_args = BTreeMap::new();
            let policy = Policy {
                allow_remote_add: false,
                build_args: &build_args,
            };
            gate(text, &policy).ok().map(|findings| {
                let mut rules = ids(&findings);
                rules.sort();
                rules
            })
        }

        /// One instruction of a generated Dockerfile: keyword, flags, arguments.
        fn instruction() -> impl Strategy<Value = (String, Vec<String>, String)> {
            let keyword = prop_oneof![
                Just("RUN"),
                Just("COPY"),
                Just("ADD"),
                Just("VOLUME"),
                Just("LABEL"),
                Just("ENV"),
                Just("USER")
            ];
            let flag = prop_oneof![
                Just("--mount=type=bind,source=/var/run/docker.sock,target=/s"),
                Just("--mount=type=cache,target=/root/.cache"),
                Just("--network=host"),
                Just("--network=none"),
                Just("--security=insecure"),
                Just("--checksum=sha256:00"),
                Just("--chown=1:1"),
            ];
            let arg = prop_oneof![
                Just("true"),
                Just("/var/run/docker.sock /s"),
                Just("io.adde.volumes=victim"),
                Just("team=ml"),
                Just("http://127.0.0.1/x /x"),
                Just("API_TOKEN=x"),
                Just("1000"),
            ];
            (keyword, prop::collection::vec(flag, 0..4), arg).prop_map(|(k, flags, arg)| {
                (
                    k.to_string(),
                    flags.into_iter().map(str::to_string).collect(),
                    arg.to_string(),
                )
            })
        }

        fn render(
            instructions: &[(String, Vec<String>, String)],
            keyword: impl Fn(&str, usize) -> String,
            separator: &str,
        ) -> String {
            let mut text = String::from("FROM a:1\n");
            for (n, (k, flags, arg)) in instructions.iter().enumerate() {
                let mut tokens = flags.clone();
                tokens.push(arg.clone());
                text.push_str(&format!("{} {}\n", keyword(k, n), tokens.join(separator)));
            }
            text
        }

        proptest! {
            #[test]
            fn the_parser_and_gate_never_panic(text in "\\PC{0,200}", shaped in dockerfile_text()) {
                for t in [&text, &shaped] {
                    let _ = parse(t, Reading::BuildKit);
                    let _ = parse(t, Reading::Classic);
                    let _ = verdict(t);
                }
            }

            #[test]
            fn the_verdict_ignores_keyword_case_and_continuations_between_flags(
                instructions in prop::collection::vec(instruction(), 1..6),
                mask in any::<u64>(),
            ) {
                let plain = render(&instructions, |k, _| k.to_string(), " ");
                let cased = render(
                    &instructions,
                    |k, n| {
                        k.chars()
                            .enumerate()
                            .map(|(i, c)| if (mask >> ((n * 7 + i) % 64)) & 1 == 1 { c.to_ascii_lowercase() } else { c })
                            .collect()
                    },
                    " ",
                );
                let continued = render(&instructions, |k, _| k.to_string(), " \\\n   ");
                let expected = verdict(&plain);
                prop_assert!(expected.is_some(), "{}", plain);
                prop_assert_eq!(&verdict(&cased), &expected, "{}", cased);
                prop_assert_eq!(&verdict(&continued), &expected, "{}", continued);
            }
        }
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
