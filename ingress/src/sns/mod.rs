//! The SES route's authentication: SNS message parsing and signature
//! verification (SNS cannot send custom headers, so no token here).
mod message;
mod verify;

pub use message::{Kind, SnsMessage, kind};
pub use verify::{Verifier, VerifyError};
