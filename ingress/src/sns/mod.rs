//! The SES route's authentication: SNS message parsing, sender checks
//! (topic allowlist, message age, region) and signature verification (SNS
//! cannot send custom headers, so no token here).
mod message;
mod origin;
mod verify;

pub use crate::aws_names::{host_region, topic_region};
pub use message::{Kind, ParseError, SnsMessage, kind, parse_delivery};
pub use origin::{OriginError, check as check_origin, check_url_region};
pub use verify::{Verifier, VerifyError};
