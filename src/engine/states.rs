//! Container states the Engine API does not name. Podman's compatible API also answers its
//! own (`stopped`: stopped, before its cleanup marks it `exited`; `configured` and
//! `initialized`: made, not started), and bollard then refuses the whole answer, so one such
//! container broke an inspect and every listing. Such an answer is decoded again here, each
//! unknown state mapped to the API's nearest; an unknown one counts as `dead` (not running,
//! not to be used).

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The states the Engine API (and bollard) know.
const KNOWN: [&str; 9] = [
    "",
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
    "stopping",
];

/// The answer `failure` could not decode, decoded again with every container state known;
/// the failure itself when it was about something else.
pub fn with_known_states<T: DeserializeOwned>(
    failure: bollard::errors::Error,
) -> std::result::Result<T, bollard::errors::Error> {
    let bollard::errors::Error::JsonDataError { contents, .. } = &failure else {
        return Err(failure);
    };
    let Ok(mut answer) = serde_json::from_str::<Value>(contents) else {
        return Err(failure);
    };
    if !map_states(&mut answer) {
        return Err(failure);
    }
    serde_json::from_value(answer).map_err(|_| failure)
}

/// Maps the unknown states of an inspect answer (`State.Status`) or of a listing (each
/// item's `State`); whether there was one.
fn map_states(answer: &mut Value) -> bool {
    let mut mapped = false;
    let containers: Vec<&mut Value> = match answer {
        Value::Array(items) => items.iter_mut().collect(),
        one => vec![one],
    };
    for container in containers {
        let state = match container.get_mut("State") {
            Some(Value::Object(state)) => state.get_mut("Status"),
            other => other,
        };
        if let Some(Value::String(status)) = state {
            if !KNOWN.contains(&status.as_str()) {
                *status = known(status).to_string();
                mapped = true;
            }
        }
    }
    mapped
}

fn known(state: &str) -> &'static str {
    match state {
        "stopped" => "exited",
        "configured" | "initialized" => "created",
        _ => "dead",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
        ContainerSummaryStateEnum,
    };

    /// Podman 4.3.1's answers (rootless, recorded), with the state set to `state`.
    fn recorded(file: &str, state: &str) -> String {
        file.replace("\"created\"", &format!("\"{state}\""))
    }

    const INSPECT: &str = include_str!("testdata/podman-4.3-inspect.json");
    const LIST: &str = include_str!("testdata/podman-4.3-list.json");

    /// What bollard makes of an answer.
    fn decoded<T: DeserializeOwned>(body: &str) -> std::result::Result<T, bollard::errors::Error> {
        serde_json::from_str(body).map_err(|e| bollard::errors::Error::JsonDataError {
            message: e.to_string(),
            column: e.column(),
            contents: body.to_string(),
        })
    }

    #[test]
    fn podman_s_own_states_are_mapped_to_the_api_s() {
        for (podman, api) in [
            ("stopped", ContainerStateStatusEnum::EXITED),
            ("configured", ContainerStateStatusEnum::CREATED),
            ("unknown", ContainerStateStatusEnum::DEAD),
        ] {
            let body = recorded(INSPECT, podman);
            let failure = decoded::<ContainerInspectResponse>(&body).unwrap_err();
            let inspect: ContainerInspectResponse = with_known_states(failure).unwrap();
            assert_eq!(inspect.state.unwrap().status, Some(api), "{podman}");
        }
        let body = recorded(LIST, "stopped");
        let failure = decoded::<Vec<ContainerSummary>>(&body).unwrap_err();
        let list: Vec<ContainerSummary> = with_known_states(failure).unwrap();
        assert_eq!(list[0].state, Some(ContainerSummaryStateEnum::EXITED));
    }

    #[test]
    fn other_failures_stay_as_they_were() {
        // A known state decodes as recorded; an answer broken elsewhere is not retried.
        assert!(decoded::<ContainerInspectResponse>(INSPECT).is_ok());
        let broken = INSPECT.replacen("\"Id\"", "\"Id\": 7, \"x\"", 1);
        let failure = decoded::<ContainerInspectResponse>(&broken).unwrap_err();
        let again = with_known_states::<ContainerInspectResponse>(failure).unwrap_err();
        assert!(matches!(
            again,
            bollard::errors::Error::JsonDataError { .. }
        ));
    }
}
