//! AWS names the SES route checks: SNS topic ARNs and SNS host names, and
//! the region each of them names.

/// The region of an SNS topic ARN (`arn:PARTITION:sns:REGION:ACCOUNT:NAME`).
pub fn topic_region(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (arn_word, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, name) = (parts.next()?, parts.next()?, parts.next()?);
    let well_formed = arn_word == "arn"
        && partition.starts_with("aws")
        && service == "sns"
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty();
    well_formed.then_some(region)
}

/// The region of an AWS SNS host (`sns.REGION.amazonaws.com`, or `.com.cn`);
/// `None` for any other host (only reachable when an operator widened the
/// certificate host pattern, e.g. for a test server).
pub fn host_region(host: &str) -> Option<&str> {
    let rest = host.strip_prefix("sns.")?;
    rest.strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))
        .filter(|r| !r.is_empty() && !r.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_and_hosts_name_their_region() {
        assert_eq!(
            topic_region("arn:aws:sns:us-east-1:123456789012:ses-inbound"),
            Some("us-east-1")
        );
        assert_eq!(
            topic_region("arn:aws-cn:sns:cn-north-1:123456789012:t"),
            Some("cn-north-1")
        );
        for bad in [
            "",
            "arn:aws:sqs:us-east-1:123456789012:t",
            "arn:aws:sns::123456789012:t",
            "arn:aws:sns:us-east-1:1234:t",
            "arn:aws:sns:us-east-1:123456789012:",
            "arn:aws:sns:US-EAST-1:123456789012:t",
        ] {
            assert_eq!(topic_region(bad), None, "{bad}");
        }
        assert_eq!(
            host_region("sns.eu-west-1.amazonaws.com"),
            Some("eu-west-1")
        );
        assert_eq!(
            host_region("sns.cn-north-1.amazonaws.com.cn"),
            Some("cn-north-1")
        );
        assert_eq!(host_region("sns.evil.example.amazonaws.com"), None);
        assert_eq!(host_region("127.0.0.1"), None);
    }
}
