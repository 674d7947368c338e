//! The one place that decides what an AWS error means for the caller:
//! capacity (try the next zone or type), quota (stop and name it),
//! credentials or configuration (stop, no failover), transient (retry in
//! place, bounded), no answer (retried less, then named by its call), not
//! found and already exists (the caller knows what they mean), anything else
//! (stop with the raw message).

use crate::provider::ProviderError;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use std::time::Duration;

/// Error codes that mean "no capacity here": the next candidate may have some.
const CAPACITY: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacityOnHost",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    // A spot request whose price is below the zone's spot price: another zone may be cheaper.
    "SpotMaxPriceTooLow",
];
const QUOTA: &[&str] = &[
    "VcpuLimitExceeded",
    "InstanceLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "LimitExceeded",
    "LimitExceededException",
    "TooManyBuckets",
    "AddressLimitExceeded",
];
const CREDENTIALS: &[&str] = &[
    "AuthFailure",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "OptInRequired",
    "InvalidAccessKeyId",
];
const TRANSIENT: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
];

/// Codes that say the resource is not there (any more): for a removal, it is gone.
const NOT_FOUND: &[&str] = &[
    "InvalidInstanceID.NotFound",
    "NoSuchBucket",
    "InvalidGroup.NotFound",
    "InvalidPlacementGroup.Unknown",
    "ParameterNotFound",
];
const ALREADY_EXISTS: &[&str] = &["AlreadyExistsException", "BucketAlreadyOwnedByYou", "InvalidPlacementGroup.Duplicate"];

/// An EC2 On-Demand vCPU quota in Service Quotas (service code `ec2`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ec2Quota {
    pub code: &'static str,
    pub name: &'static str,
}

const G_AND_VT: Ec2Quota = Ec2Quota { code: "L-DB2E81BA", name: "Running On-Demand G and VT instances" };
const P: Ec2Quota = Ec2Quota { code: "L-417A185B", name: "Running On-Demand P instances" };
const STANDARD: Ec2Quota =
    Ec2Quota { code: "L-1216C47A", name: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances" };
/// Instance families (the letters before the generation digit) and their quota.
const FAMILY_QUOTAS: &[(&str, Ec2Quota)] = &[
    ("g", G_AND_VT),
    ("vt", G_AND_VT),
    ("p", P),
    ("a", STANDARD),
    ("c", STANDARD),
    ("d", STANDARD),
    ("h", STANDARD),
    ("i", STANDARD),
    ("im", STANDARD),
    ("is", STANDARD),
    ("m", STANDARD),
    ("r", STANDARD),
    ("t", STANDARD),
    ("z", STANDARD),
];

/// The quota that limits launching `instance_type` On-Demand, so a quota error can name the
/// code to raise; None for families without a confirmed code (the message then names the family).
pub fn ec2_quota(instance_type: &str) -> Option<Ec2Quota> {
    let family: String = instance_type.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    FAMILY_QUOTAS.iter().find(|(f, _)| *f == family).map(|(_, q)| *q)
}

/// Classifies an error code and message, as sent by EC2, CloudFormation, SSM or S3.
/// `zone` and `instance_type` say what was asked for, for capacity errors.
pub fn classify_code(code: &str, message: &str, zone: &str, instance_type: &str) -> ProviderError {
    let raw = if message.is_empty() { code.to_string() } else { format!("{code}: {message}") };
    // `Unsupported` is a capacity answer only when it is about the type in that zone.
    let unsupported_here = code == "Unsupported" && message.to_lowercase().contains("availability zone");
    if CAPACITY.contains(&code) || unsupported_here {
        return ProviderError::Capacity { zone: zone.into(), instance_type: instance_type.into(), message: raw };
    }
    if QUOTA.contains(&code) {
        return ProviderError::Quota { instance_type: instance_type.into(), message: raw };
    }
    // CloudFormation says a stack is missing with a ValidationError, in words.
    let missing_stack = code == "ValidationError" && message.contains("does not exist");
    if NOT_FOUND.contains(&code) || missing_stack {
        return ProviderError::NotFound(raw);
    }
    if ALREADY_EXISTS.contains(&code) {
        return ProviderError::AlreadyExists(raw);
    }
    if CREDENTIALS.contains(&code) {
        return ProviderError::Credentials(raw);
    }
    if TRANSIENT.contains(&code) {
        return ProviderError::Transient(raw);
    }
    ProviderError::Other(raw)
}

/// The same reasons arriving as text: CloudFormation resource events and
/// status reasons carry EC2's message, not its code.
pub fn classify_reason(reason: &str, zone: &str, instance_type: &str) -> Option<ProviderError> {
    let code = CAPACITY.iter().chain(QUOTA).find(|c| reason.contains(*c))?;
    Some(classify_code(code, reason, zone, instance_type))
}

/// Zones an EC2 capacity message suggests, in its order:
/// "... You can currently get g6e.12xlarge capacity by ... choosing us-east-1b, us-east-1c."
pub fn suggested_zones(message: &str) -> Vec<String> {
    let Some(at) = message.find("choosing") else { return vec![] };
    message[at + "choosing".len()..]
        .split(|c: char| c == ',' || c.is_whitespace() || c == '.')
        .filter(|w| is_zone(w))
        .map(|w| w.to_string())
        .collect()
}

fn is_zone(w: &str) -> bool {
    let b = w.as_bytes();
    w.len() >= 10 && w.contains('-') && b[b.len() - 1].is_ascii_lowercase() && b[b.len() - 2].is_ascii_digit()
}

/// Any SDK error: service errors by code, connection and timeout failures as transient.
pub fn classify<E, R>(err: &SdkError<E, R>, zone: &str, instance_type: &str) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = || format!("{}", DisplayChain(err));
    match err {
        // Identity resolution fails before any request is sent; it never heals by waiting.
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) if text().contains("credential") => {
            ProviderError::Credentials(text())
        }
        SdkError::TimeoutError(_) => ProviderError::NoAnswer { call: String::new(), detail: text() },
        SdkError::DispatchFailure(d) if d.is_timeout() => ProviderError::NoAnswer { call: String::new(), detail: text() },
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => ProviderError::Transient(text()),
        SdkError::ServiceError(s) => {
            let e = s.err();
            match e.code() {
                Some(code) => classify_code(code, e.message().unwrap_or(""), zone, instance_type),
                None => ProviderError::Other(format!("{}", DisplayChain(err))),
            }
        }
        _ => {
            let text = text();
            if text.contains("credentials") || text.contains("region") {
                ProviderError::Credentials(text)
            } else {
                ProviderError::Other(text)
            }
        }
    }
}

/// An error with its sources, since the SDK's top-level message is often just "dispatch failure".
struct DisplayChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut src = self.0.source();
        while let Some(s) = src {
            write!(f, ": {s}")?;
            src = s.source();
        }
        Ok(())
    }
}

/// Retries transient errors in place with jittered exponential back-off (8 attempts), an
/// unanswered call fewer times (3: each already waited a full timeout), and names the call
/// when it gives up; everything else returns at once. Only for calls safe to repeat: reads,
/// and creates that carry an idempotency token or are checked before they are repeated.
pub async fn with_retry<T, F, Fut>(sink: &dyn crate::progress::Sink, what: &str, mut call: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    const ATTEMPTS: u32 = 8;
    const UNANSWERED: u32 = 3;
    let mut attempt = 0;
    loop {
        match call().await {
            Err(ProviderError::Transient(m)) if attempt + 1 < ATTEMPTS => {
                let wait = backoff(attempt);
                sink.line(&format!("  {what}: {m}; retrying in {:.1}s", wait.as_secs_f64()));
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(ProviderError::NoAnswer { detail, .. }) if attempt + 1 < UNANSWERED => {
                let wait = backoff(attempt);
                sink.line(&format!("  {what}: no answer ({detail}); retrying in {:.1}s", wait.as_secs_f64()));
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(ProviderError::NoAnswer { detail, .. }) => {
                return Err(ProviderError::NoAnswer { call: what.into(), detail: format!("{detail}; {} attempts", attempt + 1) })
            }
            Err(ProviderError::Transient(m)) => {
                return Err(ProviderError::Transient(format!("{what}: {m} ({} attempts)", attempt + 1)))
            }
            other => return other,
        }
    }
}

/// 200 ms doubling to at most 10 s, with full jitter so parallel callers spread out.
pub fn backoff(attempt: u32) -> Duration {
    let cap = (200u64 << attempt.min(6)).min(10_000);
    Duration::from_millis(cap / 2 + jitter(cap / 2))
}

/// A cheap jitter source: no randomness crate needed for spreading retries.
pub fn jitter(max: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    if max == 0 {
        0
    } else {
        h.finish() % max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_codes_and_reasons_are_recognised() {
        assert!(matches!(classify_code("InsufficientInstanceCapacity", "x", "a", "t"), ProviderError::Capacity { .. }));
        assert!(matches!(
            classify_code(
                "Unsupported",
                "Your requested instance type is not supported in your requested Availability Zone",
                "a",
                "t"
            ),
            ProviderError::Capacity { .. }
        ));
        assert!(matches!(classify_code("Unsupported", "The feature is not supported", "a", "t"), ProviderError::Other(_)));
        assert!(matches!(classify_code("VcpuLimitExceeded", "", "a", "t"), ProviderError::Quota { .. }));
        assert!(matches!(
            classify_code("InvalidInstanceID.NotFound", "The instance ID 'i-0abc' does not exist", "", ""),
            ProviderError::NotFound(_)
        ));
        assert!(matches!(classify_code("ValidationError", "Stack with id x does not exist", "", ""), ProviderError::NotFound(_)));
        assert!(matches!(classify_code("ValidationError", "Template format error", "", ""), ProviderError::Other(_)));
        assert!(matches!(
            classify_code("AlreadyExistsException", "Stack [x] already exists", "", ""),
            ProviderError::AlreadyExists(_)
        ));
        assert!(matches!(classify_code("AuthFailure", "", "a", "t"), ProviderError::Credentials(_)));
        assert!(matches!(classify_code("RequestLimitExceeded", "", "a", "t"), ProviderError::Transient(_)));
        let ev = "Resource handler returned message: \"We currently do not have sufficient g6e.12xlarge capacity (Service: Ec2, Status Code: 500, Error Code: InsufficientInstanceCapacity)\"";
        assert!(matches!(classify_reason(ev, "us-east-1a", "g6e.12xlarge"), Some(ProviderError::Capacity { .. })));
        assert!(classify_reason("Resource creation cancelled", "a", "t").is_none());
    }

    #[test]
    fn quota_codes_follow_the_instance_family() {
        assert_eq!(ec2_quota("g6e.12xlarge").map(|q| q.code), Some("L-DB2E81BA"));
        assert_eq!(ec2_quota("vt1.3xlarge").map(|q| q.code), Some("L-DB2E81BA"));
        assert_eq!(ec2_quota("p5.48xlarge").map(|q| q.code), Some("L-417A185B"));
        assert_eq!(ec2_quota("m7i.large").map(|q| q.code), Some("L-1216C47A"));
        assert_eq!(ec2_quota("inf2.xlarge"), None);
        assert_eq!(ec2_quota("trn1.32xlarge"), None);
    }

    #[test]
    fn suggested_zones_are_read_from_the_message() {
        let m = "We currently do not have sufficient g6e.12xlarge capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. You can currently get g6e.12xlarge capacity by not specifying an Availability Zone in your request or choosing us-east-1b, us-east-1c.";
        assert_eq!(suggested_zones(m), vec!["us-east-1b", "us-east-1c"]);
        assert!(suggested_zones("no hint").is_empty());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(200));
        assert!(backoff(20) <= Duration::from_secs(10));
        assert!(backoff(3) >= Duration::from_millis(800));
    }
}
