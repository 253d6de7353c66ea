//! Integration tests: the real `adde` binary against the real Docker engine.

#[path = "../common/mod.rs"]
mod common;

mod agent;
mod deadlines;
mod envelope;
mod environments;
mod execution;
mod factory;
mod gate;
mod history;
mod ids;
mod images;
mod installs;
mod integrity;
mod interp;
mod mcp;
mod policy;
mod pools;
mod processes;
mod results;
mod sessions;
mod warm;
