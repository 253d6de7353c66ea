//! Shared by the targets: the one crash rule that is not a panic.
#![allow(dead_code)]

/// adde reports its own bugs as `internal_error`; on any input that is a crash.
pub fn not_internal<T>(what: &str, input: &dyn std::fmt::Debug, result: &adde::error::Result<T>) {
    if let Err(err) = result {
        // Rendering the error must not panic either.
        let message = err.to_string();
        let _ = err.details();
        assert_ne!(
            err.code(),
            "internal_error",
            "{what} on {input:?} gave internal_error: {message}"
        );
    }
}

/// Reads fuzz bytes as a stream of small decisions; zeros once exhausted.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    pub fn u64(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        let got = self.take(8);
        buf[..got.len()].copy_from_slice(got);
        u64::from_le_bytes(buf)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}
