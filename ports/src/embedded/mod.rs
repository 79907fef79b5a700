//! Embedded SQLite adapters. (Being written.)
use crate::{Backend, EmbeddedSettings, PortError, Result};

pub async fn open(_s: &EmbeddedSettings) -> Result<Backend> {
    Err(PortError::Unavailable("embedded backend not built yet".into()))
}

pub async fn provision(_s: &EmbeddedSettings) -> Result<Vec<String>> {
    Err(PortError::Unavailable("embedded backend not built yet".into()))
}
