//! Reading a payload: parsing it into a tool's input type with errors that name the field,
//! and the checks many tools share (required strings, paths, environment variables, numbers).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::protocol::WORKSPACE;

/// Deserializes a payload, naming the offending field and what is accepted when it fails.
pub fn parse<I: DeserializeOwned>(payload: Value) -> Result<I> {
    if !payload.is_object() {
        return Err(Error::InvalidJson(format!(
            "expected a JSON object such as {{\"image\": \"busybox\"}}, got {}",
            kind_of(&payload)
        )));
    }
    serde_path_to_error::deserialize(payload).map_err(|err| {
        let path = err.path().to_string();
        let inner = plain_types(&err.into_inner().to_string());
        // Unknown and missing fields are reported at the object; the name is in backticks.
        let field = if path == "." {
            inner.split('`').nth(1).map(str::to_string)
        } else {
            Some(path.clone())
        };
        let message = if path == "." {
            inner
        } else {
            format!("field `{path}`: {inner}")
        };
        Error::InvalidPayload { message, field }
    })
}

/// serde's type names in the words of JSON: "expected f64" reads "expected a number".
fn plain_types(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u16", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected an object"),
        ("integer `", "number `"),
        ("floating point `", "number `"),
        ("invalid value: number", "invalid value: the number"),
    ];
    let mut text = message.to_string();
    for (rust, json) in WORDS {
        text = text.replace(rust, json);
    }
    // "expected struct MountSpec" and the like.
    if let Some(at) = text.find("expected struct ") {
        text.replace_range(at.., "expected an object");
    }
    text
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field that must not be blank, trimmed; `what` names it in the error.
pub fn required(field: &'static str, what: &str, value: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, format!("{what} is required")));
    }
    Ok(trimmed.to_string())
}

/// A path that must stay inside its folder: relative, no `..`, no NUL; returned cleaned.
pub fn relative_path(field: &'static str, name: &str) -> Result<String> {
    let bad = |why: &str| {
        Err(Error::invalid(
            field,
            format!("{field} {name:?} {why}; give a relative path such as \"main.py\" or \"src/app.js\""),
        ))
    };
    if name.trim().is_empty() {
        return bad("is empty");
    }
    if name.contains('\0') {
        return bad("contains a NUL byte");
    }
    if name.starts_with('/') {
        return bad("is absolute");
    }
    if name.ends_with('/') {
        return bad("names a folder");
    }
    let parts: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return bad("contains '..'");
    }
    let cleaned = parts.join("/");
    // "./ " cleans to " ", which the blank check above refuses: refused here too, so that
    // whatever is accepted is accepted again as it is (found by the paths fuzz target).
    if cleaned.trim().is_empty() {
        return bad("names no file");
    }
    Ok(cleaned)
}

/// An absolute, normalized path in the environment; relative paths start at /workspace.
pub fn container_path(field: &'static str, path: &str) -> Result<String> {
    if path.trim().is_empty() || path.contains('\0') {
        return Err(Error::invalid(
            field,
            format!("{field} {path:?} is not a path"),
        ));
    }
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{WORKSPACE}/{path}")
    };
    Ok(format!(
        "/{}",
        crate::paths::lexical_parts(&joined).join("/")
    ))
}

/// Environment variables as `KEY=value` lines: names not empty, without '=' or NUL, values
/// without NUL.
pub fn env_vars(field: &'static str, vars: &BTreeMap<String, String>) -> Result<Vec<String>> {
    vars.iter()
        .map(|(key, value)| {
            if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                return Err(Error::invalid(
                    field,
                    format!("{key:?} is not a valid variable name (no '=', no NUL, not empty), or its value holds a NUL"),
                ));
            }
            Ok(format!("{key}={value}"))
        })
        .collect()
}

/// A number that must lie in `min..=max` (and be finite); the error states the range.
pub fn in_range(field: &'static str, value: f64, min: f64, max: f64) -> Result<f64> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Error::invalid(
            field,
            format!("{field} must be between {min} and {max}, not {value}"),
        ))
    }
}

/// A size such as "512m", "2g", "1048576", "64k" (a trailing "b" allowed, binary units) in
/// bytes; at least `min` bytes.
pub fn parse_size(field: &'static str, text: &str, min: i64) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, unit) = match t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let scale: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        _ => f64::NAN,
    };
    let bytes = digits.parse::<f64>().map(|n| n * scale).unwrap_or(f64::NAN);
    // Up to 1 PiB: far beyond any machine, and far from overflowing an i64.
    if !bytes.is_finite() || bytes < min as f64 || bytes > 1024.0f64.powi(5) {
        return Err(Error::invalid(
            field,
            format!("{field} {text:?} is not a size of at least {min} bytes and at most 1 PiB, e.g. \"512m\" or \"2g\""),
        ));
    }
    Ok(bytes as i64)
}

/// Bytes as mebibytes with two decimals, as ADDE reported sizes.
pub fn megabytes(bytes: u64) -> f64 {
    (bytes as f64 / 1_048_576.0 * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        container_id: String,
        #[serde(default)]
        timeout_sec: f64,
        #[serde(default)]
        tail: usize,
    }

    #[test]
    fn unknown_field_names_the_field_and_what_is_accepted() {
        let err = parse::<Sample>(json!({"container_id": "x", "timeout_secs": 3}))
            .err()
            .unwrap();
        assert_eq!(err.code(), "invalid_payload");
        let text = err.to_string();
        assert!(
            text.contains("timeout_secs") && text.contains("timeout_sec`"),
            "{text}"
        );
        assert_eq!(err.details()["field"], "timeout_secs");
    }

    #[test]
    fn type_errors_speak_json_not_rust() {
        let err = parse::<Sample>(json!({"container_id": "x", "timeout_sec": "30"}))
            .err()
            .unwrap();
        assert_eq!(err.details()["field"], "timeout_sec");
        let text = err.to_string();
        assert!(text.contains("expected a number"), "{text}");
        assert!(!text.contains("f64"), "{text}");
        let err = parse::<Sample>(json!({"container_id": "x", "tail": -1}))
            .err()
            .unwrap();
        assert!(!err.to_string().contains("usize"), "{err}");
    }

    #[test]
    fn missing_field_is_named_and_non_objects_are_rejected() {
        let err = parse::<Sample>(json!({})).err().unwrap();
        assert_eq!(err.details()["field"], "container_id");
        let err = parse::<Sample>(json!(["busybox"])).err().unwrap();
        assert_eq!(err.code(), "invalid_json");
    }

    #[test]
    fn paths_must_stay_inside() {
        assert_eq!(relative_path("filename", "main.py").unwrap(), "main.py");
        assert_eq!(
            relative_path("filename", "./src//app.js").unwrap(),
            "src/app.js"
        );
        for bad in [
            "",
            "  ",
            "/etc/passwd",
            "../x.py",
            "a/../../x",
            "a\0b",
            "dir/",
            ".",
            "./\u{c}",
        ] {
            let err = relative_path("filename", bad).err().unwrap();
            assert_eq!(err.code(), "invalid_argument", "{bad:?}");
            assert_eq!(err.details()["field"], "filename");
        }
    }

    #[test]
    fn container_paths_are_normalized_inside_the_root() {
        assert_eq!(
            container_path("path", "out/plot.png").unwrap(),
            "/workspace/out/plot.png"
        );
        assert_eq!(container_path("path", "/tmp/../etc//x").unwrap(), "/etc/x");
        assert_eq!(container_path("path", "../../..").unwrap(), "/");
        assert!(container_path("path", "").is_err());
        assert!(container_path("path", "a\0b").is_err());
    }

    #[test]
    fn blank_values_are_rejected() {
        let err = required("image", "image name", "  ").err().unwrap();
        assert_eq!(err.to_string(), "image name is required");
        assert_eq!(err.details()["field"], "image");
        assert_eq!(
            required("image", "image name", " busybox ").unwrap(),
            "busybox"
        );
    }

    #[test]
    fn env_vars_and_ranges() {
        let ok = BTreeMap::from([("A".to_string(), "1=2".to_string())]);
        assert_eq!(env_vars("env", &ok).unwrap(), ["A=1=2"]);
        for (k, v) in [("", "x"), ("A=B", "x"), ("A", "x\0")] {
            let bad = BTreeMap::from([(k.to_string(), v.to_string())]);
            assert_eq!(env_vars("env", &bad).unwrap_err().details()["field"], "env");
        }
        assert!(in_range("x", 1e15, 0.0, 1e6).is_err());
        assert!(in_range("x", f64::NAN, 0.0, 1e6).is_err());
        assert!(in_range("x", 1e300, 0.0, 1e6).is_err());
        assert_eq!(in_range("x", 2.0, 0.0, 1e6).unwrap(), 2.0);
    }
}
