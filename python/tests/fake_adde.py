#!/usr/bin/env python3
"""A stand-in for the adde binary in unit tests; FAKE_ADDE_MODE picks what it does."""
import json
import os
import sys
import time

mode = os.environ.get("FAKE_ADDE_MODE", "echo")
payload = sys.stdin.buffer.read()
out = sys.stdout.buffer
if mode == "echo":
    out.write(json.dumps({"argv": sys.argv[1:], "payload": json.loads(payload)}).encode())
elif mode == "error":
    code = os.environ["FAKE_ADDE_CODE"]
    out.write(json.dumps({"error": f"failed with {code}", "error_code": code, "ok": False}).encode())
    sys.exit(1)
elif mode == "garbage":
    out.write(b"this is not json")
elif mode == "sleep":
    time.sleep(30)
elif mode == "utf8":
    out.write('{"log": {"stdout": "h\u00e9llo \u2713\\n", "exit_code": 0}}'.encode("utf-8"))
elif mode == "tools":
    if sys.argv[1] == "list_tools":
        schema = {"type": "object", "properties": {"container_id": {"type": "string"}}, "required": ["container_id"]}
        tools = [{"name": n, "description": f"{n} tool", "input_schema": schema}
                 for n in ["create_runtime_env", "execute_code_block", "get_container_logs", "cleanup_env"]]
        out.write(json.dumps({"tools": tools}).encode())
    else:
        out.write(json.dumps({"error": "no container x", "error_code": "container_not_found"}).encode())
        sys.exit(1)
elif mode == "noisy":
    # What the real binary does on a failure: the JSON on stdout, a line for people on stderr.
    sys.stderr.write("adde: progress 1/2\n")
    sys.stderr.write(f"adde: error: {sys.argv[1]} went wrong\n")
    out.write(json.dumps({"error": "went wrong", "error_code": "engine_error"}).encode())
    out.flush()
    sys.exit(1)
elif mode == "noisy-ok":
    sys.stderr.write("adde: pulling 3 layers\n")
    out.write(json.dumps({"ok": True}).encode())
elif mode == "stream":
    # A streamed run: one event per line as the output comes, then the result.
    request = json.loads(payload)
    if request.get("stream"):
        for event, data in [("stdout", "a\n"), ("stderr", "oops\n"), ("stdout", "\u00e9\n")]:
            out.write((json.dumps({"event": event, "data": data}) + "\n").encode())
            out.flush()
            time.sleep(0.05)
    code = os.environ.get("FAKE_ADDE_CODE")
    if code:
        out.write(json.dumps({"error": f"failed with {code}", "error_code": code}).encode() + b"\n")
        sys.exit(1)
    out.write(json.dumps({"log": {"stdout": "a\n\u00e9\n", "stderr": "oops\n", "exit_code": 0}, "payload": request}).encode())
elif mode == "agent":
    # list_tools with schemas shaped like the binary's; every other tool echoes its payload,
    # and create_runtime_env answers with an environment.
    if sys.argv[1] == "list_tools":
        with open(os.environ["FAKE_ADDE_TOOLS"]) as f:
            out.write(f.read().encode())
    elif sys.argv[1] == "create_runtime_env":
        out.write(json.dumps({"container_id": "c0ffee" * 8, "name": "adde-env1", "payload": json.loads(payload)}).encode())
    else:
        out.write(json.dumps({"argv": sys.argv[1:], "payload": json.loads(payload)}).encode())
out.write(b"\n")
