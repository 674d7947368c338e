//! Where an MLflow tracking URI's requests go and how they are authenticated,
//! as MLflow's own client does it:
//!
//! - `http(s)://...`: `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`
//!   as basic auth, else `MLFLOW_TRACKING_TOKEN` as a bearer token, else nothing
//!   (MLflow's `rest_utils` has the same precedence).
//! - A SageMaker tracking server ARN (`arn:aws:sagemaker:REGION:ACCOUNT:mlflow-tracking-server/NAME`),
//!   as AWS's `sagemaker-mlflow` plugin does: requests go to
//!   `https://REGION.experiments.sagemaker.aws` (or `SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT`,
//!   the plugin's override) with the ARN in `x-mlflow-sm-tracking-server-arn`,
//!   signed with SigV4 for the service `sagemaker-mlflow` with the body's hash in
//!   `x-amz-content-sha256`; credentials come from the standard AWS chain
//!   (environment, profile, SSO, web identity, container, instance).

use super::MlflowError;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use std::time::{Duration, SystemTime};

/// The header SageMaker routes a request to its tracking server by.
pub const ARN_HEADER: &str = "x-mlflow-sm-tracking-server-arn";
/// The SigV4 service name SageMaker-managed MLflow checks.
pub const SIGV4_SERVICE: &str = "sagemaker-mlflow";
/// Overrides where an ARN's requests go (the plugin's name for it).
pub const CUSTOM_ENDPOINT_ENV: &str = "SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT";
/// Credentials that expire sooner than this are fetched again before signing.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// A SageMaker MLflow tracking server's ARN, read by field.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackingServerArn {
    pub text: String,
    pub partition: String,
    pub region: String,
}

impl TrackingServerArn {
    /// `arn:PARTITION:sagemaker:REGION:ACCOUNT:TYPE/NAME`; None when `uri` is not an ARN at all.
    pub fn parse(uri: &str) -> Option<Result<TrackingServerArn, MlflowError>> {
        if !uri.starts_with("arn:") {
            return None;
        }
        let bad = |why: &'static str| Some(Err(MlflowError::BadArn { arn: uri.to_string(), why }));
        if uri.contains('#') {
            return bad("assuming a role with `ARN#ROLE_ARN` is not supported; use an AWS profile with `role_arn`");
        }
        let parts: Vec<&str> = uri.splitn(6, ':').collect();
        let [_, partition, service, region, account, resource] = parts[..] else {
            return bad("an ARN has six `:`-separated fields");
        };
        if service != "sagemaker" {
            return bad("the service of a tracking server ARN is `sagemaker`");
        }
        if region.is_empty() || account.is_empty() {
            return bad("the ARN has no region or account");
        }
        if !resource.split_once('/').is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty()) {
            return bad("the resource is `mlflow-tracking-server/NAME`");
        }
        if !matches!(partition, "aws" | "aws-us-gov") {
            return bad("SageMaker MLflow is in the `aws` and `aws-us-gov` partitions");
        }
        Some(Ok(TrackingServerArn { text: uri.to_string(), partition: partition.into(), region: region.into() }))
    }

    /// Where SageMaker serves the tracking server's REST API.
    fn url(&self) -> String {
        format!("https://{}.experiments.sagemaker.aws", self.region)
    }
}

/// How requests prove who sends them.
enum Auth {
    None,
    Basic { user: String, password: String },
    Bearer(String),
    SigV4(Box<SigV4>),
}

struct SigV4 {
    arn: TrackingServerArn,
    chain: DefaultCredentialsChain,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

/// Where requests go (`base`, without a trailing `/`) and how they are authenticated.
pub struct Endpoint {
    base: String,
    auth: Auth,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Endpoint {
    /// The endpoint of a tracking URI, with its authentication from the environment.
    pub async fn of(uri: &str) -> Result<Endpoint, MlflowError> {
        if let Some(arn) = TrackingServerArn::parse(uri) {
            let arn = arn?;
            let base = env(CUSTOM_ENDPOINT_ENV).unwrap_or_else(|| arn.url()).trim_end_matches('/').to_string();
            let chain = DefaultCredentialsChain::builder().region(aws_config::Region::new(arn.region.clone())).build().await;
            let auth = Auth::SigV4(Box::new(SigV4 { arn, chain, cached: tokio::sync::Mutex::new(None) }));
            return Ok(Endpoint { base, auth });
        }
        if !uri.starts_with("http://") && !uri.starts_with("https://") {
            return Err(MlflowError::Unsupported { uri: uri.to_string() });
        }
        let auth = match (env("MLFLOW_TRACKING_USERNAME"), env("MLFLOW_TRACKING_PASSWORD"), env("MLFLOW_TRACKING_TOKEN")) {
            (Some(user), Some(password), _) => Auth::Basic { user, password },
            (_, _, Some(token)) => Auth::Bearer(token),
            _ => Auth::None,
        };
        Ok(Endpoint { base: uri.trim_end_matches('/').to_string(), auth })
    }

    /// A request to `path` (from the server's root: `api/2.0/mlflow/runs/search`),
    /// with the query and body given, authenticated.
    pub async fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<reqwest::Request, MlflowError> {
        let mut url = format!("{}/{path}", self.base);
        if !query.is_empty() {
            url = format!("{url}?{}", encode_query(query));
        }
        let mut b = http.request(method, &url);
        let bytes = match body {
            Some((bytes, content_type)) => {
                b = b.header(CONTENT_TYPE, content_type).body(bytes.clone());
                bytes
            }
            None => vec![],
        };
        b = match &self.auth {
            Auth::None | Auth::SigV4(_) => b,
            Auth::Basic { user, password } => b.basic_auth(user, Some(password)),
            Auth::Bearer(token) => b.bearer_auth(token),
        };
        let connect = |source| MlflowError::Connect { path: path.to_string(), source };
        let mut req = b.build().map_err(connect)?;
        if let Auth::SigV4(s) = &self.auth {
            s.sign(&mut req, &bytes).await?;
        }
        Ok(req)
    }
}

impl SigV4 {
    /// Credentials valid for the next few minutes, fetched again when they are not.
    async fn credentials(&self) -> Result<Credentials, MlflowError> {
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Credentials| c.expiry().is_none_or(|e| e > SystemTime::now() + REFRESH_BEFORE);
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let c = self.chain.provide_credentials().await.map_err(MlflowError::Credentials)?;
        *cached = Some(c.clone());
        Ok(c)
    }

    /// Adds the ARN header, then `x-amz-date`, `x-amz-content-sha256`, the session
    /// token if any and `authorization`, signing the method, URL, body and every
    /// header the request has so far.
    async fn sign(&self, req: &mut reqwest::Request, body: &[u8]) -> Result<(), MlflowError> {
        use aws_sigv4::http_request::{sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings};
        let arn = HeaderValue::from_str(&self.arn.text)
            .map_err(|_| MlflowError::BadArn { arn: self.arn.text.clone(), why: "the ARN is not a valid header value" })?;
        req.headers_mut().insert(HeaderName::from_static(ARN_HEADER), arn);
        let identity = self.credentials().await?.into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.arn.region)
            .name(SIGV4_SERVICE)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .expect("identity, region, name, time and settings are all set")
            .into();
        let headers: Vec<(&str, &str)> = req.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
        let signable =
            SignableRequest::new(req.method().as_str(), req.url().as_str(), headers.into_iter(), SignableBody::Bytes(body))
                .map_err(MlflowError::Sign)?;
        let (instructions, _) = sign(signable, &params).map_err(MlflowError::Sign)?.into_parts();
        for (name, value) in instructions.headers() {
            let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) else {
                return Err(MlflowError::SignedHeader { name: name.to_string() });
            };
            req.headers_mut().insert(n, v);
        }
        Ok(())
    }
}

/// A query string with every character but RFC 3986's unreserved ones percent-encoded
/// (a space is `%20`, never `+`, so the signature's canonical query matches what is sent).
fn encode_query(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tracking_server_arn_is_read_by_field() {
        let arn = "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/nixl";
        let a = TrackingServerArn::parse(arn).unwrap().unwrap();
        assert_eq!((a.partition.as_str(), a.region.as_str()), ("aws", "us-west-2"));
        assert_eq!(a.url(), "https://us-west-2.experiments.sagemaker.aws");
        assert!(TrackingServerArn::parse("http://127.0.0.1:5000").is_none());
        for (bad, why) in [
            ("arn:aws:s3:us-west-2:123456789012:mlflow-tracking-server/nixl", "`sagemaker`"),
            ("arn:aws:sagemaker:us-west-2:123456789012", "six"),
            ("arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server", "resource"),
            ("arn:aws-cn:sagemaker:cn-north-1:123456789012:mlflow-tracking-server/x", "partitions"),
            (&format!("{arn}#arn:aws:iam::123456789012:role/r"), "role"),
        ] {
            let e = TrackingServerArn::parse(bad).unwrap().unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn queries_encode_spaces_as_percent_20() {
        assert_eq!(encode_query(&[("experiment_name", "phase 2/a+b")]), "experiment_name=phase%202%2Fa%2Bb");
    }
}
