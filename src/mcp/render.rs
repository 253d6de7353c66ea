//! A tool's result as MCP content: adde's JSON object as `structuredContent` (the same
//! object the command line prints), and a short text for the model: a run's exit code and
//! output, a text file's lines, or else the compact JSON. An image read with read_file also
//! comes back as image content.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::error::Error;
use crate::tools::ToolInfo;

use super::surface::error_object;

/// The MIME type of an image file MCP clients show, by extension.
pub fn image_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => return None,
    })
}

/// A successful call. `image` is the MIME type when read_file read an image.
pub fn success(tool: &str, mut value: Value, image: Option<&str>) -> CallToolResult {
    if tool == "run_code" {
        let images = cell_images(&mut value);
        let mut content = vec![ContentBlock::text(cell(&value))];
        content.extend(
            images
                .into_iter()
                .map(|(data, mime)| ContentBlock::image(data, mime)),
        );
        return result(content, value, false);
    }
    if let Some(mime) = image {
        let complete = value["has_more"] == false && value["encoding"] == "base64";
        if let (true, Some(data)) = (complete, value["content"].as_str()) {
            let data = data.to_string();
            let size = value["size"].as_u64().unwrap_or(0);
            // The bytes travel once, as the image; the structured result keeps the rest.
            if let Value::Object(object) = &mut value {
                object.remove("content");
            }
            let text = format!(
                "{} ({mime}, {size} bytes), returned as an image",
                value["path"].as_str().unwrap_or("")
            );
            return result(
                vec![ContentBlock::text(text), ContentBlock::image(data, mime)],
                value,
                false,
            );
        }
    }
    let text = summary(tool, &value);
    result(vec![ContentBlock::text(text)], value, false)
}

/// A failed call: `isError`, with adde's error object (carrying `error_code`) as the
/// structured content.
pub fn failure(info: Option<&ToolInfo>, err: &Error) -> CallToolResult {
    failed(error_object(info, err))
}

/// A failure whose error object is already made.
pub fn failed(object: Value) -> CallToolResult {
    let text = format!(
        "error {}: {}",
        object["error_code"].as_str().unwrap_or("internal_error"),
        object["error"].as_str().unwrap_or("")
    );
    result(vec![ContentBlock::text(text)], object, true)
}

fn result(content: Vec<ContentBlock>, structured: Value, is_error: bool) -> CallToolResult {
    let mut result = if is_error {
        CallToolResult::structured_error(structured)
    } else {
        CallToolResult::structured(structured)
    };
    result.content = content;
    result
}

/// The text a model reads.
pub fn summary(tool: &str, value: &Value) -> String {
    match tool {
        "execute_code_block" | "execute_command" | "run_container" => run(&value["log"]),
        "start_process" | "signal_process" | "wait_process" => process(value),
        "read_process_output" => {
            let mut text = process(value);
            for stream in ["stdout", "stderr"] {
                let output = value[stream].as_str().unwrap_or("");
                if let Some(skipped) = value[format!("{stream}_skipped")].as_u64() {
                    text.push_str(&format!("[{skipped} earlier bytes of {stream} dropped]\n"));
                }
                if !output.is_empty() {
                    text.push_str(&format!("{stream}:\n{output}"));
                    if !output.ends_with('\n') {
                        text.push('\n');
                    }
                }
            }
            text.push_str(&format!(
                "next: stdout_offset {}, stderr_offset {}{}",
                value["stdout_offset"],
                value["stderr_offset"],
                if value["more"] == true {
                    " (more now)"
                } else {
                    ""
                }
            ));
            text
        }
        "read_file" if value["encoding"] == "utf8" && value["content"].is_string() => {
            let content = value["content"].as_str().unwrap_or("");
            let whole = value["offset"] == 0 && value["has_more"] == false;
            if whole {
                content.to_string()
            } else {
                let first = value["offset"].as_u64().unwrap_or(0);
                let count = value["line_count"].as_u64().unwrap_or(0);
                let more = if value["has_more"] == true {
                    ", more remains"
                } else {
                    ""
                };
                format!(
                    "[lines {}-{} of {}{more}]\n{content}",
                    first + 1,
                    first + count,
                    value["total_lines"]
                )
            }
        }
        _ => value.to_string(),
    }
}

/// Takes a cell's PNG and JPEG results out of its structured result, to return them as image
/// content (their bytes travel once); each result keeps the note where its image went.
fn cell_images(value: &mut Value) -> Vec<(String, &'static str)> {
    let mut images = Vec::new();
    let results = value["results"].as_array_mut().into_iter().flatten();
    for data in results.filter_map(|r| r.get_mut("data").and_then(Value::as_object_mut)) {
        for mime in ["image/png", "image/jpeg"] {
            if let Some(Value::String(bytes)) = data.remove(mime) {
                images.push((bytes, mime));
                data.insert(
                    mime.to_string(),
                    format!("[image {} of this result's content]", images.len()).into(),
                );
            }
        }
    }
    images
}

/// A cell in a few lines: how it ended, its output, the text of its results, its error.
fn cell(value: &Value) -> String {
    let mut text = format!(
        "[{}] {} {} ms",
        value["execution_count"],
        value["context"].as_str().unwrap_or(""),
        value["duration_ms"]
    );
    if value["timed_out"] == true {
        text.push_str(", timed out");
    }
    if value["context_restarted"] == true {
        text.push_str(&format!(
            ", context restarted: {}",
            value["restart_reason"].as_str().unwrap_or("")
        ));
    }
    text.push('\n');
    for stream in ["stdout", "stderr"] {
        let output = value[stream].as_str().unwrap_or("");
        if !output.is_empty() {
            text.push_str(&format!("{stream}:\n{output}"));
            if !output.ends_with('\n') {
                text.push('\n');
            }
        }
    }
    for result in value["results"].as_array().into_iter().flatten() {
        let data = &result["data"];
        let shown = ["text/markdown", "text/plain"]
            .iter()
            .find_map(|mime| data[*mime].as_str())
            .unwrap_or("");
        let label = if result["kind"] == "execute_result" {
            "out"
        } else {
            "display"
        };
        text.push_str(&format!("{label}: {shown}\n"));
    }
    if let Some(traceback) = value["error"]["traceback"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        text.push_str(traceback);
    } else if value["error"].is_object() {
        text.push_str(&format!(
            "error: {} {}\n",
            value["error"]["name"].as_str().unwrap_or(""),
            value["error"]["value"].as_str().unwrap_or("")
        ));
    }
    text
}

/// A background process in one line: its id and state, and how it ended.
fn process(value: &Value) -> String {
    let mut text = format!(
        "process {} {}",
        value["process_id"].as_str().unwrap_or(""),
        value["state"].as_str().unwrap_or("")
    );
    if value["state"] == "exited" {
        text.push_str(&format!(", exit_code {}", value["exit_code"]));
        for field in ["signal", "execution_time", "error"] {
            if let Some(more) = value[field].as_str() {
                text.push_str(&format!(", {more}"));
            }
        }
        if value["timed_out"] == true {
            text.push_str(", timed out");
        }
    }
    if value["sent"] == false {
        text.push_str(" (no signal sent)");
    }
    text.push('\n');
    text
}

/// A run in a few lines: how it ended, then stdout and stderr as they are.
fn run(log: &Value) -> String {
    let mut text = format!(
        "exit_code {} ({})",
        log["exit_code"],
        log["execution_time"].as_str().unwrap_or("")
    );
    if log["timed_out"] == true {
        text.push_str(", timed out");
    }
    if log["oom_killed"] == true {
        text.push_str(", out of memory");
    }
    if let Some(signal) = log["signal"].as_str() {
        text.push_str(&format!(", {signal}"));
    }
    text.push('\n');
    for stream in ["stdout", "stderr"] {
        let output = log[stream].as_str().unwrap_or("");
        if output.is_empty() {
            continue;
        }
        text.push_str(stream);
        if log[format!("{stream}_truncated")] == true {
            text.push_str(&format!(
                " (truncated; {} bytes in all)",
                log[format!("{stream}_bytes")]
            ));
        }
        text.push_str(":\n");
        text.push_str(output);
        if !output.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_run_reads_as_exit_code_and_output() {
        let log = json!({"log": {"exit_code": 0, "execution_time": "0.05s", "timed_out": false,
            "oom_killed": false, "signal": null, "stdout": "1\n", "stderr": "",
            "stdout_truncated": false, "stderr_truncated": false}});
        assert_eq!(
            summary("execute_code_block", &log),
            "exit_code 0 (0.05s)\nstdout:\n1\n"
        );
        let log = json!({"log": {"exit_code": 137, "execution_time": "1.00s", "timed_out": true,
            "stdout": "", "stderr": "x", "stderr_truncated": true, "stderr_bytes": 9}});
        assert_eq!(
            summary("execute_command", &log),
            "exit_code 137 (1.00s), timed out\nstderr (truncated; 9 bytes in all):\nx\n"
        );
    }

    #[test]
    fn a_process_reads_as_its_state_and_new_output() {
        let out = json!({"process_id": "r1", "state": "running", "stdout": "a\n", "stderr": "",
            "stdout_offset": 2, "stderr_offset": 0, "stdout_skipped": 10, "more": false});
        assert_eq!(
            summary("read_process_output", &out),
            "process r1 running\n[10 earlier bytes of stdout dropped]\nstdout:\na\n\
             next: stdout_offset 2, stderr_offset 0"
        );
        let ended = json!({"process_id": "r1", "state": "exited", "exit_code": 143,
            "signal": "SIGTERM", "execution_time": "1.00s"});
        assert_eq!(
            summary("wait_process", &ended),
            "process r1 exited, exit_code 143, SIGTERM, 1.00s\n"
        );
    }

    #[test]
    fn images_come_back_as_images_once() {
        let value = json!({"path": "/workspace/a.png", "content": "iVBO", "encoding": "base64",
            "size": 3, "has_more": false});
        let result = success("read_file", value, image_type("a.png"));
        assert_eq!(result.content.len(), 2);
        let wire = serde_json::to_value(&result).unwrap();
        assert_eq!(wire["content"][1]["type"], "image");
        assert_eq!(wire["content"][1]["mimeType"], "image/png");
        assert!(wire["structuredContent"].get("content").is_none());
        assert_eq!(image_type("x.JPG"), Some("image/jpeg"));
        assert_eq!(image_type("x.txt"), None);
    }

    #[test]
    fn a_cells_images_come_back_as_images_once() {
        let value = json!({"execution_count": 2, "context": "default", "duration_ms": 5,
            "stdout": "hi\n", "stderr": "", "error": null, "timed_out": false,
            "results": [{"kind": "display_data", "data": {"text/plain": "<Figure>", "image/png": "iVBO"}},
                        {"kind": "execute_result", "data": {"text/plain": "42"}}]});
        let result = success("run_code", value, None);
        let wire = serde_json::to_value(&result).unwrap();
        assert_eq!(
            wire["content"][0]["text"],
            "[2] default 5 ms\nstdout:\nhi\ndisplay: <Figure>\nout: 42\n"
        );
        assert_eq!(wire["content"][1]["type"], "image");
        assert_eq!(wire["content"][1]["data"], "iVBO");
        assert_eq!(wire["content"][1]["mimeType"], "image/png");
        let data = &wire["structuredContent"]["results"][0]["data"];
        assert_eq!(data["image/png"], "[image 1 of this result's content]");
    }

    #[test]
    fn failures_carry_the_error_code() {
        let err = Error::invalid("filename", "bad");
        let result = failure(crate::tools::find("write_file"), &err);
        let wire = serde_json::to_value(&result).unwrap();
        assert_eq!(wire["isError"], true);
        assert_eq!(wire["structuredContent"]["error_code"], "invalid_argument");
        assert_eq!(wire["structuredContent"]["ok"], false);
        assert_eq!(wire["structuredContent"]["field"], "filename");
        assert_eq!(wire["content"][0]["text"], "error invalid_argument: bad");
    }
}
