"""The exceptions: AddeError (a RuntimeError, so ADDE users' `except RuntimeError` still
works) and subclasses for the error codes people branch on."""

from __future__ import annotations

from typing import Any


class AddeError(RuntimeError):
    """An adde tool failed. `error_code` is adde's stable code, `result` the whole JSON, and
    `stderr` what the binary wrote for people (not shown unless asked: see the README)."""

    def __init__(
        self,
        message: str,
        error_code: str = "adde_error",
        result: dict[str, Any] | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.result: dict[str, Any] = result if result is not None else {"error": message, "error_code": error_code}
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, error_code={self.error_code!r})"


class DockerUnavailable(AddeError):
    """The Docker engine cannot be reached (docker_unavailable)."""


class NotFound(AddeError):
    """Something named does not exist: an image, a container, a context, a run."""


class InvalidInput(AddeError):
    """adde refused the input before doing anything: a bad field, value or tool name."""


class NotManaged(AddeError):
    """The container or image was not created by adde, which leaves it alone."""


class BuildFailed(AddeError):
    """An image build failed or was blocked; `result` holds failed_layer, build_log_summary, findings."""


class PolicyDenied(AddeError):
    """The operator's policy does not allow the request; `result` names field, value, rule."""


class AddeTimeout(AddeError):
    """adde itself did not answer in time (not a program timing out: that is a normal result)."""


class BinaryNotFound(AddeError):
    """The adde executable cannot be found."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "binary_not_found")


_BY_CODE: dict[str, type[AddeError]] = {
    "docker_unavailable": DockerUnavailable,
    "image_not_found": NotFound,
    "image_not_present": NotFound,
    "container_not_found": NotFound,
    "context_not_found": NotFound,
    "code_context_not_found": NotFound,
    "run_not_found": NotFound,
    "no_runs": NotFound,
    "file_not_found": NotFound,
    "process_not_found": NotFound,
    "invalid_json": InvalidInput,
    "invalid_payload": InvalidInput,
    "invalid_argument": InvalidInput,
    "unknown_tool": InvalidInput,
    "usage": InvalidInput,
    "not_managed": NotManaged,
    "build_failed": BuildFailed,
    "dockerfile_blocked": BuildFailed,
    "dockerfile_invalid": BuildFailed,
    "dockerfile_missing": BuildFailed,
    "policy_denied": PolicyDenied,
}


def error_from_result(result: dict[str, Any], stderr: str = "") -> AddeError:
    code = str(result.get("error_code") or "adde_error")
    message = str(result.get("error") or f"adde failed ({code})")
    return _BY_CODE.get(code, AddeError)(message, code, result, stderr)
