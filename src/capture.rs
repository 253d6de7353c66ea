//! Bounded capture of a program's output: the first and last bytes are kept, the middle is
//! counted and dropped, so memory stays bounded however much a program prints.

use std::collections::VecDeque;

/// Keeps up to `cap` bytes: the first half as it arrives, the last half as a ring.
pub struct HeadTail {
    cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

/// A captured stream, ready to report.
#[derive(Debug, PartialEq)]
pub struct Captured {
    pub text: String,
    pub truncated: bool,
    pub total_bytes: u64,
}

impl HeadTail {
    pub fn new(cap: usize) -> Self {
        HeadTail {
            cap,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let head_cap = self.cap - self.cap / 2;
        let room = head_cap.saturating_sub(self.head.len());
        if room > 0 {
            let take = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        let tail_cap = self.cap / 2;
        if tail_cap == 0 {
            return;
        }
        if bytes.len() >= tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(tail_cap);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// The kept text, invalid UTF-8 replaced; when bytes were dropped, a marker in the middle
    /// says how many.
    pub fn finish(self) -> Captured {
        self.snapshot()
    }

    /// What has been captured so far, without ending the capture.
    pub fn snapshot(&self) -> Captured {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let truncated = self.total > kept;
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if truncated {
            text.push_str(&format!(
                "\n[... adde: {} bytes omitted ...]\n",
                self.total - kept
            ));
        }
        let (a, b) = self.tail.as_slices();
        let tail = [a, b].concat();
        text.push_str(&String::from_utf8_lossy(&tail));
        Captured {
            text,
            truncated,
            total_bytes: self.total,
        }
    }
}

/// Exactly the last `n` lines of `text` (a final line without a newline counts); 0 means all.
pub fn tail_lines(text: &str, n: usize) -> String {
    if n == 0 {
        return text.to_string();
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    lines[lines.len().saturating_sub(n)..].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(cap: usize, chunks: &[&[u8]]) -> Captured {
        let mut buf = HeadTail::new(cap);
        for chunk in chunks {
            buf.push(chunk);
        }
        buf.finish()
    }

    #[test]
    fn small_output_is_kept_whole() {
        let got = capture(16, &[b"hello ", b"world"]);
        assert_eq!(got.text, "hello world");
        assert!(!got.truncated);
        assert_eq!(got.total_bytes, 11);
    }

    #[test]
    fn large_output_keeps_head_and_tail_whatever_the_chunking() {
        let data: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        for chunk in [1, 3, 7, 100, 1000] {
            let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
            let got = capture(10, &chunks);
            assert!(got.truncated);
            assert_eq!(got.total_bytes, 1000);
            let head = String::from_utf8(data[..5].to_vec()).unwrap();
            let tail = String::from_utf8(data[995..].to_vec()).unwrap();
            assert_eq!(
                got.text,
                format!("{head}\n[... adde: 990 bytes omitted ...]\n{tail}")
            );
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let got = capture(64, &[b"ok \xff\xfe end"]);
        assert_eq!(got.text, "ok \u{fffd}\u{fffd} end");
    }

    #[test]
    fn tail_lines_returns_exactly_n_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(tail_lines("a\nb\nc\n", 1), "c\n");
        assert_eq!(tail_lines("a\nb\n", 5), "a\nb\n");
        assert_eq!(tail_lines("a\nb\n", 0), "a\nb\n");
        assert_eq!(tail_lines("", 3), "");
    }
}
