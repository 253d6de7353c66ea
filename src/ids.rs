//! Identifiers adde makes: random names for what it creates, time-ordered ids for runs.

/// `n` random bytes as hex, from the kernel's random source. getrandom only fails when
/// interrupted or before the kernel's pool is ready; a few retries cover that, and a kernel
/// that never gives randomness is a broken host, reported as a bug rather than a hang.
pub fn random_hex(n: usize) -> String {
    const ATTEMPTS: usize = 1000;
    let mut bytes = vec![0u8; n];
    let mut filled = 0;
    for _ in 0..ATTEMPTS {
        if filled == n {
            break;
        }
        // SAFETY: getrandom writes at most the given length into the buffer.
        let got = unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), n - filled, 0) };
        if got > 0 {
            filled += got as usize;
        }
    }
    assert!(
        filled == n,
        "the kernel gave no randomness (getrandom kept failing)"
    );
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A run id that sorts in the order runs started: `r<unix ms, 13 digits>-<random>`.
pub fn new_run_id() -> String {
    format!(
        "r{:013}-{}",
        chrono::Utc::now().timestamp_millis(),
        random_hex(4)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_sort_by_time_and_differ() {
        let a = super::new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::new_run_id();
        assert!(a < b, "{a} < {b}");
        assert_eq!(super::random_hex(6).len(), 12);
    }
}
