//! Which SNS senders get in, decided before any certificate is fetched or
//! any subscription confirmed:
//!
//! - the topic must be on the operator's allowlist (any AWS account can
//!   subscribe its own topic to a public endpoint; its messages verify
//!   with AWS's own certificate);
//! - the message `Timestamp` must be recent (a captured, validly signed
//!   message cannot be replayed later);
//! - a certificate or subscribe URL on an AWS host must be in the topic's
//!   region (SNS signs with the certificate of the topic's region).
//!
//! Every field checked here is covered by the signature, so a forger who
//! edits one to pass these checks fails the signature check that follows.
use chrono::{DateTime, Utc};

use super::SnsMessage;
use crate::aws_names::{host_region, topic_region};
use crate::config::SnsConfig;

/// Why a message is not let in. The `Display` text is safe to return and
/// to log (it names topics and fields, never message content).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// No allowlist is configured: the route accepts nothing.
    #[error(
        "the SES route is disabled: no SNS topic allowlist is configured (SWITCHYARD_SNS_TOPIC_ARNS)"
    )]
    RouteDisabled,
    /// The topic (the ARN given) is not on the allowlist.
    #[error("TopicArn {0} is not on this endpoint's allowlist")]
    TopicNotAllowed(String),
    /// `TopicArn` is not an SNS topic ARN.
    #[error("TopicArn is not an SNS topic ARN")]
    NotATopic,
    /// `Timestamp` is not an ISO 8601 time.
    #[error("Timestamp is not an ISO 8601 time")]
    BadTimestamp,
    /// Older than accepted: its age and the most accepted, in seconds.
    #[error("message is {0} s old, older than the {1} s accepted")]
    Stale(i64, u64),
    /// `Timestamp` lies this many seconds in the future.
    #[error("Timestamp lies {0} s in the future")]
    Future(i64),
    /// A URL (the field named) on an AWS host of another region than the
    /// topic's: the field, the URL's region, the topic's region.
    #[error("{0} is in region {1}, the topic in {2}")]
    RegionMismatch(&'static str, String, String),
}

impl OriginError {
    /// 400 for a malformed field, 403 for a sender that is not let in.
    pub fn is_malformed(&self) -> bool {
        matches!(self, OriginError::NotATopic | OriginError::BadTimestamp)
    }
}

/// Topic allowlist and message age.
pub fn check(cfg: &SnsConfig, msg: &SnsMessage, now: DateTime<Utc>) -> Result<(), OriginError> {
    let Some(allowed) = &cfg.topic_arns else {
        return Err(OriginError::RouteDisabled);
    };
    if topic_region(&msg.topic_arn).is_none() {
        return Err(OriginError::NotATopic);
    }
    if !cfg.any_topic() && !allowed.contains(&msg.topic_arn) {
        return Err(OriginError::TopicNotAllowed(msg.topic_arn.clone()));
    }
    let at = DateTime::parse_from_rfc3339(&msg.timestamp)
        .map_err(|_| OriginError::BadTimestamp)?
        .with_timezone(&Utc);
    let age = now.signed_duration_since(at).num_seconds();
    let max = i64::try_from(cfg.max_age_secs).unwrap_or(i64::MAX);
    if age > max {
        return Err(OriginError::Stale(age, cfg.max_age_secs));
    }
    if age < -max {
        return Err(OriginError::Future(-age));
    }
    Ok(())
}

/// A certificate or subscribe URL on an AWS host must be in the topic's
/// region. URLs that do not parse are left to the URL allowlist.
pub fn check_url_region(
    msg: &SnsMessage,
    what: &'static str,
    url: Option<&str>,
) -> Result<(), OriginError> {
    let topic = topic_region(&msg.topic_arn).ok_or(OriginError::NotATopic)?;
    let Some(host) = url
        .and_then(|u| reqwest::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned))
    else {
        return Ok(());
    };
    match host_region(&host) {
        Some(region) if region != topic => Err(OriginError::RegionMismatch(
            what,
            region.to_owned(),
            topic.to_owned(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ANY_TOPIC;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-inbound";

    fn msg(topic: &str, timestamp: &str, cert: &str) -> SnsMessage {
        let doc = serde_json::json!({
            "Type": "Notification", "MessageId": "m", "TopicArn": topic,
            "Message": "{}", "Timestamp": timestamp, "SigningCertURL": cert,
        });
        SnsMessage::from_value(&doc).expect("valid")
    }

    fn cfg(topics: &[&str]) -> SnsConfig {
        SnsConfig {
            topic_arns: Some(topics.iter().map(|t| (*t).to_owned()).collect()),
            ..SnsConfig::default()
        }
    }

    #[test]
    fn unlisted_topics_and_a_missing_allowlist_are_refused() {
        let now = Utc::now();
        let m = msg(
            TOPIC,
            &now.to_rfc3339(),
            "https://sns.us-east-1.amazonaws.com/c.pem",
        );
        assert_eq!(
            check(&SnsConfig::default(), &m, now),
            Err(OriginError::RouteDisabled)
        );
        let other = "arn:aws:sns:us-east-1:999999999999:attacker-topic";
        assert_eq!(
            check(&cfg(&[other]), &m, now),
            Err(OriginError::TopicNotAllowed(TOPIC.to_owned()))
        );
        assert_eq!(check(&cfg(&[other, TOPIC]), &m, now), Ok(()));
        assert_eq!(check(&cfg(&[ANY_TOPIC]), &m, now), Ok(()));
    }

    #[test]
    fn old_and_future_timestamps_are_refused() {
        let now = Utc::now();
        let c = cfg(&[TOPIC]);
        let at = |secs: i64| (now - chrono::Duration::seconds(secs)).to_rfc3339();
        let cert = "https://sns.us-east-1.amazonaws.com/c.pem";
        assert_eq!(check(&c, &msg(TOPIC, &at(3599), cert), now), Ok(()));
        assert!(matches!(
            check(&c, &msg(TOPIC, &at(3601), cert), now),
            Err(OriginError::Stale(3601, 3600))
        ));
        assert!(matches!(
            check(&c, &msg(TOPIC, &at(-7200), cert), now),
            Err(OriginError::Future(_))
        ));
        assert_eq!(
            check(&c, &msg(TOPIC, "yesterday", cert), now),
            Err(OriginError::BadTimestamp)
        );
        // SNS's own format, with milliseconds.
        let sns_format = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        assert_eq!(check(&c, &msg(TOPIC, &sns_format, cert), now), Ok(()));
    }

    #[test]
    fn a_certificate_from_another_region_is_refused() {
        let now = Utc::now().to_rfc3339();
        let same = msg(TOPIC, &now, "https://sns.us-east-1.amazonaws.com/c.pem");
        assert_eq!(
            check_url_region(&same, "SigningCertURL", same.signing_cert_url.as_deref()),
            Ok(())
        );
        let other = msg(TOPIC, &now, "https://sns.eu-west-1.amazonaws.com/c.pem");
        assert_eq!(
            check_url_region(&other, "SigningCertURL", other.signing_cert_url.as_deref()),
            Err(OriginError::RegionMismatch(
                "SigningCertURL",
                "eu-west-1".into(),
                "us-east-1".into()
            ))
        );
        let test_host = msg(TOPIC, &now, "http://127.0.0.1:9/c.pem");
        assert_eq!(
            check_url_region(
                &test_host,
                "SigningCertURL",
                test_host.signing_cert_url.as_deref()
            ),
            Ok(())
        );
    }
}
