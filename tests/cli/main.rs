//! Integration tests: the real `adde` binary against the real Docker engine.

#[path = "../common/mod.rs"]
mod common;

mod deadlines;
mod envelope;
mod environments;
mod execution;
mod factory;
mod history;
mod images;
mod integrity;
mod sessions;
