//! Every tool's payload parsing (`adde::tools::parse_input`): raw JSON text, and payloads built
//! from the tools' own schemas (their field names and enum values) so the fuzzer gets past
//! `deny_unknown_fields` into the typed fields. Errors are fine; a panic or `internal_error`
//! is a crash.
#![no_main]

mod common;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use common::{not_internal, Bytes};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value};

struct Vocab {
    /// Per tool (same order as `adde::tools::TOOLS`): every property name in its schema.
    keys: Vec<Vec<String>>,
    /// Enum and const strings from every schema, plus values that probe the validators.
    strings: Vec<String>,
}

fn vocab() -> &'static Vocab {
    static VOCAB: OnceLock<Vocab> = OnceLock::new();
    VOCAB.get_or_init(|| {
        let mut strings = BTreeSet::new();
        let keys = adde::tools::TOOLS
            .iter()
            .map(|tool| {
                let mut keys = BTreeSet::new();
                collect(&(tool.schema)(), &mut keys, &mut strings);
                keys.into_iter().collect()
            })
            .collect();
        for s in [
            "",
            " ",
            ".",
            "..",
            "/",
            "//",
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a\0b",
            "\n",
            "busybox",
            "busybox:1.36",
            "Busybox",
            "x?all=1",
            "x#y",
            "%2e%2e",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "r1700000000000-1a2b3c4d",
            "python",
            "python3",
            "node",
            "bash",
            "sh",
            "main.py",
            "/workspace",
            "/.adde/adde",
            "/var/run/docker.sock",
            "0644",
            "0o755",
            "777",
            "-1",
            "1e309",
            "NaN",
            "aGVsbG8=",
            "!!!",
            "\u{202e}",
            "é",
            "https://example.invalid/x.git",
            "FROM busybox\nRUN true\n",
            "1g",
            "512m",
            "0.5",
            "host",
            "none",
            "bridge",
            "root",
        ] {
            strings.insert(s.to_string());
        }
        strings.insert("a".repeat(300));
        Vocab {
            keys,
            strings: strings.into_iter().collect(),
        }
    })
}

fn collect(schema: &Value, keys: &mut BTreeSet<String>, strings: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                keys.extend(props.keys().cloned());
            }
            for word in ["enum", "const", "default", "examples"] {
                match map.get(word) {
                    Some(Value::String(s)) => {
                        strings.insert(s.clone());
                    }
                    Some(Value::Array(items)) => {
                        strings.extend(items.iter().filter_map(|v| v.as_str().map(String::from)));
                    }
                    _ => {}
                }
            }
            for value in map.values() {
                collect(value, keys, strings);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, keys, strings)),
        _ => {}
    }
}

const EDGE_NUMBERS: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    -0.5,
    1e-300,
    1e300,
    -1e300,
    4294967295.0,
    4294967296.0,
    9007199254740993.0,
    1.8446744073709552e19,
    3.6e6,
    86400.0,
    1e9,
];

fn string(bytes: &mut Bytes, vocab: &Vocab) -> String {
    if bytes.byte() % 2 == 0 {
        vocab.strings[bytes.byte() as usize % vocab.strings.len()].clone()
    } else {
        let n = bytes.byte() as usize % 48;
        String::from_utf8_lossy(bytes.take(n)).into_owned()
    }
}

fn value(bytes: &mut Bytes, vocab: &Vocab, keys: &[String], depth: u32) -> Value {
    let kinds = if depth >= 4 { 9 } else { 11 };
    match bytes.byte() % kinds {
        0 => Value::Null,
        1 => Value::Bool(bytes.byte() % 2 == 1),
        2 => Value::from(bytes.byte() as i8 as i64),
        3 => Value::from(bytes.u64()),
        4 => Value::from(bytes.u64() as i64),
        5 => Number::from_f64(f64::from_bits(bytes.u64())).map_or(Value::Null, Value::Number),
        6 => Number::from_f64(EDGE_NUMBERS[bytes.byte() as usize % EDGE_NUMBERS.len()])
            .map_or(Value::Null, Value::Number),
        7 | 8 => Value::String(string(bytes, vocab)),
        9 => {
            let n = bytes.byte() % 5;
            Value::Array(
                (0..n)
                    .map(|_| value(bytes, vocab, keys, depth + 1))
                    .collect(),
            )
        }
        _ => Value::Object(object(bytes, vocab, keys, depth + 1)),
    }
}

fn object(bytes: &mut Bytes, vocab: &Vocab, keys: &[String], depth: u32) -> Map<String, Value> {
    let n = bytes.byte() % 8;
    let mut map = Map::new();
    for _ in 0..n {
        let key = match bytes.byte() % 8 {
            0 => string(bytes, vocab),
            _ if keys.is_empty() => string(bytes, vocab),
            k => keys[(bytes.byte() as usize).wrapping_mul(k as usize) % keys.len()].clone(),
        };
        map.insert(key, value(bytes, vocab, keys, depth));
    }
    map
}

fuzz_target!(|data: &[u8]| {
    let vocab = vocab();
    let tools = adde::tools::TOOLS;
    let mut bytes = Bytes::new(data);
    let pick = bytes.byte() as usize % (tools.len() + 1);
    let mode = bytes.byte();
    let (name, keys): (String, &[String]) = match tools.get(pick) {
        Some(tool) => (tool.name.to_string(), &vocab.keys[pick]),
        None => (string(&mut bytes, vocab), &[]),
    };
    let payload = if mode % 4 == 0 {
        // Raw JSON text, as a caller could send it.
        match serde_json::from_slice::<Value>(bytes.rest()) {
            Ok(v) => v,
            Err(_) => return,
        }
    } else if mode % 4 == 1 {
        value(&mut bytes, vocab, keys, 0)
    } else {
        Value::Object(object(&mut bytes, vocab, keys, 0))
    };
    let result = adde::tools::parse_input(&name, payload.clone());
    not_internal("parse_input", &(&name, &payload), &result);
    if let Err(err) = &result {
        let code = err.code();
        if pick < tools.len() {
            assert_ne!(code, "unknown_tool", "{name}");
        }
    }
});
