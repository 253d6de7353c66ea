//! The classic builder's log: lines, step headers and the intermediate images steps made.

use super::build::BuildOutcome;

/// Splits the build's stream fragments into lines, tracks steps and intermediate image ids,
/// and echoes lines to stderr when it is a terminal.
pub(super) struct BuildLog {
    partial: String,
    echo: bool,
    after_from: bool,
}

impl BuildLog {
    pub(super) fn new(echo: bool) -> Self {
        BuildLog {
            partial: String::new(),
            echo,
            after_from: false,
        }
    }

    pub(super) fn push(&mut self, text: &str, outcome: &mut BuildOutcome) {
        self.partial.push_str(text);
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            self.line(line.trim_end(), outcome);
        }
    }

    pub(super) fn finish(&mut self, outcome: &mut BuildOutcome) {
        let rest = std::mem::take(&mut self.partial);
        if !rest.trim().is_empty() {
            self.line(rest.trim_end(), outcome);
        }
    }

    fn line(&mut self, line: &str, outcome: &mut BuildOutcome) {
        if line.is_empty() {
            return;
        }
        if self.echo {
            eprintln!("{line}");
        }
        if let Some((number, header)) = parse_step(line) {
            crate::call::emit(|| crate::call::Event::Progress {
                message: header.clone(),
            });
            self.after_from = header
                .split_whitespace()
                .nth(3)
                .is_some_and(|k| k.eq_ignore_ascii_case("FROM"));
            outcome.step = Some((number, header));
        } else if let Some(id) = line.strip_prefix(" ---> ").filter(|id| is_short_id(id)) {
            if !std::mem::take(&mut self.after_from) {
                outcome.intermediates.push(id.to_string());
            }
        }
        outcome.lines.push(line.to_string());
    }
}

/// "Step 3/5 : RUN make" (classic builder) or "STEP 3/5: RUN make" (buildah): the number
/// and the header in the classic form.
pub fn parse_step(line: &str) -> Option<(u32, String)> {
    let rest = line
        .strip_prefix("Step ")
        .or_else(|| line.strip_prefix("STEP "))?;
    let (numbers, instruction) = rest.split_once(':')?;
    let (n, m) = numbers.trim().split_once('/')?;
    let n: u32 = n.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    Some((n, format!("Step {n}/{m} : {}", instruction.trim())))
}

fn is_short_id(text: &str) -> bool {
    text.len() == 12 && text.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_headers_parse_in_both_builders_forms() {
        assert_eq!(
            parse_step("Step 3/5 : RUN make"),
            Some((3, "Step 3/5 : RUN make".into()))
        );
        assert_eq!(
            parse_step("STEP 2/4: COPY . /app"),
            Some((2, "Step 2/4 : COPY . /app".into()))
        );
        assert_eq!(parse_step("Stepping out"), None);
    }

    #[test]
    fn the_build_log_tracks_steps_and_skips_base_images() {
        let mut outcome = BuildOutcome::default();
        let mut log = BuildLog::new(false);
        let stream = "Step 1/3 : FROM busybox\n ---> aaaaaaaaaaaa\nStep 2/3 : RUN echo hi\n ---> Running in 123\nhi\nRemoving intermediate container 123\n ---> bbbbbbbbbbbb\nStep 3/3 : RUN ex";
        for chunk in stream.as_bytes().chunks(7) {
            log.push(std::str::from_utf8(chunk).unwrap(), &mut outcome);
        }
        log.push("it 1\n", &mut outcome);
        log.finish(&mut outcome);
        assert_eq!(outcome.intermediates, vec!["bbbbbbbbbbbb".to_string()]);
        assert_eq!(outcome.step, Some((3, "Step 3/3 : RUN exit 1".into())));
        assert!(outcome.lines.contains(&"hi".to_string()));
    }
}
