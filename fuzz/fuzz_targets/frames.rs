//! What the host reads from a container, all of it untrusted: the helper's frame stream cut
//! into arbitrary chunks, the status report and the `read`/`list` answers it decodes, and the
//! bounded capture the program's output goes into. No panics; memory stays bounded by what
//! was sent (the decoder never allocates on a length a frame merely claims: libFuzzer's
//! -malloc_limit_mb catches that), and capture by its cap.
#![no_main]

mod common;

use adde::capture::{tail_lines, HeadTail};
use adde::protocol::{
    encode_frame, FileHead, FrameDecoder, Listing, RunStatus, TAG_STATUS, TAG_STDERR, TAG_STDOUT,
};
use common::Bytes;
use libfuzzer_sys::fuzz_target;

/// The frames a whole wire holds, and the bytes left over: the reference the decoder must match.
fn reference(mut wire: &[u8]) -> (Vec<(u8, Vec<u8>)>, Vec<u8>) {
    let mut frames = Vec::new();
    while wire.len() >= 5 {
        let len = u32::from_be_bytes([wire[1], wire[2], wire[3], wire[4]]) as usize;
        if wire.len() - 5 < len {
            break;
        }
        frames.push((wire[0], wire[5..5 + len].to_vec()));
        wire = &wire[5 + len..];
    }
    (frames, wire.to_vec())
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes::new(data);
    let cap = bytes.byte() as usize * 3;
    let lines = bytes.byte() as usize % 8;
    let mut decoder = FrameDecoder::default();
    let mut wire = Vec::new();
    let mut frames = Vec::new();
    let mut stdout = HeadTail::new(cap);
    let mut stderr = HeadTail::new(cap);
    let (mut out_total, mut err_total) = (0u64, 0u64);
    let mut out_all = Vec::new();
    while !bytes.is_empty() {
        // Either a chunk cut anywhere, or a well-formed frame so payloads reach the decoders.
        let op = bytes.byte();
        let chunk = if op & 0x80 == 0 {
            bytes.take(op as usize).to_vec()
        } else {
            let tag = [TAG_STDOUT, TAG_STDERR, TAG_STATUS, op][op as usize % 4];
            let len = bytes.byte() as usize;
            encode_frame(tag, bytes.take(len))
        };
        wire.extend_from_slice(&chunk);
        decoder.push(&chunk);
        while let Some((tag, payload)) = decoder.next_frame() {
            assert!(payload.len() <= wire.len(), "a frame larger than the wire");
            match tag {
                TAG_STDOUT => {
                    out_total += payload.len() as u64;
                    out_all.extend_from_slice(&payload);
                    stdout.push(&payload);
                }
                TAG_STDERR => {
                    err_total += payload.len() as u64;
                    stderr.push(&payload);
                }
                TAG_STATUS => {
                    if let Ok(status) = serde_json::from_slice::<RunStatus>(&payload) {
                        let again = serde_json::to_vec(&status).expect("serializes");
                        let back: RunStatus = serde_json::from_slice(&again).expect("round-trips");
                        assert_eq!(back, status);
                    }
                }
                _ => {
                    let _ = serde_json::from_slice::<FileHead>(&payload);
                    let _ = serde_json::from_slice::<Listing>(&payload);
                }
            }
            frames.push((tag, payload));
        }
    }
    let pending = decoder.into_pending();
    assert_eq!(
        (frames, pending),
        reference(&wire),
        "the decoder disagrees with the reference"
    );

    for (capture, total) in [(stdout, out_total), (stderr, err_total)] {
        let got = capture.finish();
        assert_eq!(got.total_bytes, total);
        if total as usize <= cap {
            assert!(
                !got.truncated,
                "{total} bytes within a cap of {cap} were truncated"
            );
        }
        // Each kept byte becomes at most 3 (U+FFFD), plus the marker line.
        assert!(
            got.text.len() <= 3 * cap + 64,
            "{} bytes kept for a cap of {cap}",
            got.text.len()
        );
    }
    // What was not truncated comes back whole.
    let mut whole = HeadTail::new(usize::MAX / 2);
    whole.push(&out_all);
    let text = whole.finish().text;
    assert_eq!(text, String::from_utf8_lossy(&out_all));
    let tail = tail_lines(&text, lines);
    assert!(text.ends_with(&tail));
    if lines > 0 {
        assert!(tail.split_inclusive('\n').count() <= lines);
    }
});
