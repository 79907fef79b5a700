//! AWS adapters. (Being written.)
use crate::{Backend, AwsSettings, PortError, Result};

pub async fn open(_s: &AwsSettings) -> Result<Backend> {
    Err(PortError::Unavailable("aws backend not built yet".into()))
}

pub async fn provision(_s: &AwsSettings) -> Result<Vec<String>> {
    Err(PortError::Unavailable("aws backend not built yet".into()))
}
