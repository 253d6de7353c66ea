//! The agent channel's decoder (what the host reads from an environment's PID 1 over attach,
//! and what the agent reads on its stdin): untrusted bytes cut anywhere. It must never panic,
//! must agree with a reference reading of the documented format, and must hold at most one
//! frame's worth of bytes once it has returned everything it can.
#![no_main]

mod common;

use adde::protocol::{
    encode_agent_frames, AgentDecoder, AgentFrame, AgentKind, AGENT_HEADER, AGENT_MAGIC,
    AGENT_MAX_FRAME, AGENT_MAX_PAYLOAD,
};
use common::Bytes;
use libfuzzer_sys::fuzz_target;

const KINDS: [AgentKind; 9] = [
    AgentKind::Hello,
    AgentKind::Start,
    AgentKind::Stdin,
    AgentKind::StdinEnd,
    AgentKind::Ready,
    AgentKind::Stdout,
    AgentKind::Stderr,
    AgentKind::End,
    AgentKind::Failed,
];

/// Kind bytes as the format documents them.
fn kind_of(byte: u8) -> Option<AgentKind> {
    let bytes = [1, 2, 3, 4, 16, 17, 18, 19, 20];
    bytes.iter().position(|&b| b == byte).map(|i| KINDS[i])
}

/// The reference: what a decoder holding `pending` returns next, as `AgentDecoder` documents
/// it (a bad frame is skipped up to the next magic after its first byte).
fn reference_next(pending: &mut Vec<u8>) -> Option<Result<AgentFrame, ()>> {
    if pending.len() < AGENT_HEADER {
        return None;
    }
    let len = u32::from_be_bytes([pending[11], pending[12], pending[13], pending[14]]) as usize;
    let good = pending[..2] == AGENT_MAGIC && len <= AGENT_MAX_PAYLOAD;
    match kind_of(pending[2]) {
        Some(kind) if good => {
            if pending.len() < AGENT_HEADER + len {
                return None;
            }
            let mut request = [0u8; 8];
            request.copy_from_slice(&pending[3..11]);
            let payload = pending[AGENT_HEADER..AGENT_HEADER + len].to_vec();
            pending.drain(..AGENT_HEADER + len);
            Some(Ok(AgentFrame {
                kind,
                request: u64::from_be_bytes(request),
                payload,
            }))
        }
        _ => {
            let skip = (1..pending.len() - 1)
                .find(|&i| pending[i..i + 2] == AGENT_MAGIC)
                .unwrap_or(pending.len());
            pending.drain(..skip);
            Some(Err(()))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes::new(data);
    let mut decoder = AgentDecoder::default();
    let mut model = Vec::new();
    while !bytes.is_empty() {
        // Raw bytes cut anywhere, or well-formed frames (split as writers split them).
        let op = bytes.byte();
        let chunk = if op & 0x80 == 0 {
            bytes.take(op as usize).to_vec()
        } else {
            let kind = KINDS[op as usize % KINDS.len()];
            let request = bytes.u64() % 4;
            let len = bytes.byte() as usize * 32;
            let payload = bytes.take(len);
            let frames = encode_agent_frames(kind, request, payload);
            assert!(frames.iter().all(|f| f.len() <= AGENT_MAX_FRAME));
            frames.concat()
        };
        decoder.push(&chunk);
        model.extend_from_slice(&chunk);
        loop {
            let got = decoder.next_frame();
            let want = reference_next(&mut model);
            match (&got, &want) {
                (None, None) => break,
                (Some(Ok(a)), Some(Ok(b))) => assert_eq!(a, b),
                (Some(Err(_)), Some(Err(()))) => {}
                _ => panic!("decoder gave {got:?}, the reference {want:?}"),
            }
        }
        // Everything returnable was returned: what is held is less than one frame.
        assert!(model.len() < AGENT_MAX_FRAME, "{} bytes held", model.len());
    }
});
