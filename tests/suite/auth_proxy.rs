//! An authenticating gateway in front of a real `mlflow server`, as SageMaker's
//! (SigV4) or a team's reverse proxy (bearer token, basic auth) stands in front
//! of theirs: it checks each request's credentials, answers 403 when they are
//! wrong, and otherwise forwards the request to MLflow and relays its answer.
//!
//! The SigV4 check is written here from AWS's specification (canonical request,
//! string to sign, HMAC-SHA256 key derivation), independently of the `aws-sigv4`
//! crate nixl signs with, and is itself checked on a vector of AWS's published
//! signing test suite.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What the gateway accepts.
#[derive(Clone)]
pub enum Check {
    /// SigV4 by this key for this region and service, with the ARN header.
    SigV4 { key_id: String, secret: String, session_token: Option<String>, region: String, service: String, arn: String },
    /// This exact `Authorization` header.
    Authorization(String),
}

/// What the gateway saw: requests forwarded, and why others were refused.
#[derive(Default, Debug)]
pub struct Seen {
    pub forwarded: Vec<String>,
    pub refused: Vec<String>,
}

pub struct Gateway {
    pub uri: String,
    pub seen: Arc<Mutex<Seen>>,
}

/// A request as read off the socket: names of headers lowercased, values as sent.
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Starts the gateway on a free loopback port, forwarding to `upstream`.
pub fn start(upstream: &str, check: Check) -> Gateway {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (upstream, shared) = (upstream.to_string(), seen.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (upstream, check, seen) = (upstream.clone(), check.clone(), shared.clone());
            std::thread::spawn(move || serve(stream, &upstream, &check, &seen));
        }
    });
    Gateway { uri, seen }
}

fn serve(stream: TcpStream, upstream: &str, check: &Check, seen: &Mutex<Seen>) {
    let Some(req) = read_request(&stream) else { return };
    let line = format!("{} {}", req.method, req.target);
    let verdict = match check {
        Check::SigV4 { key_id, secret, session_token, region, service, arn } => {
            check_sigv4(&req, key_id, secret, session_token.as_deref(), region, service, arn)
        }
        Check::Authorization(want) => match req.headers.get("authorization") {
            Some(got) if got == want => Ok(()),
            other => Err(format!("authorization {other:?}")),
        },
    };
    let (status, body) = match verdict {
        Err(why) => {
            seen.lock().unwrap().refused.push(format!("{line}: {why}"));
            (403, format!(r#"{{"message": "The request signature we calculated does not match: {why}"}}"#).into_bytes())
        }
        Ok(()) => {
            seen.lock().unwrap().forwarded.push(line);
            forward(upstream, &req)
        }
    };
    let mut out = &stream;
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(head.as_bytes()).and_then(|_| out.write_all(&body));
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_lowercase(), v.trim().to_string());
    }
    let len = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request { method, target, headers, body })
}

/// The request sent on to MLflow without its credentials, and MLflow's answer.
fn forward(upstream: &str, req: &Request) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
        let mut b = reqwest::Client::new().request(method, format!("{upstream}{}", req.target)).body(req.body.clone());
        if let Some(ct) = req.headers.get("content-type") {
            b = b.header("content-type", ct);
        }
        match b.send().await {
            Ok(r) => (r.status().as_u16(), r.bytes().await.map(|b| b.to_vec()).unwrap_or_default()),
            Err(e) => (502, e.to_string().into_bytes()),
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// HMAC-SHA256 (RFC 2104) over SHA-256's 64-byte block.
fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 { Sha256::digest(key).to_vec() } else { key.to_vec() };
    k.resize(64, 0);
    let pad = |x: u8| k.iter().map(|b| b ^ x).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(msg).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().to_vec()
}

/// URI-encodes all but the unreserved characters (and `/` when `keep_slash`).
fn uri_encode(s: &str, keep_slash: bool) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b'/' if keep_slash => "/".into(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn uri_decode(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (vec![], 0);
    while i < b.len() {
        match (b[i], s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The signature AWS computes for a request, given the headers it names as signed.
pub fn signature(req: &Request, signed: &[&str], secret: &str, scope: (&str, &str, &str)) -> String {
    let (date, region, service) = scope;
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    // Services other than S3 encode the path as sent once more.
    let uri = uri_encode(path, true);
    let mut q: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (uri_encode(&uri_decode(k), false), uri_encode(&uri_decode(v), false)))
        .collect();
    q.sort();
    let query = q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let headers: String = signed
        .iter()
        .map(|h| {
            format!(
                "{h}:{}\n",
                req.headers.get(*h).map(|v| v.split_whitespace().collect::<Vec<_>>().join(" ")).unwrap_or_default()
            )
        })
        .collect();
    let payload = req.headers.get("x-amz-content-sha256").cloned().unwrap_or_else(|| sha256_hex(&req.body));
    let canonical = format!("{}\n{uri}\n{query}\n{headers}\n{}\n{payload}", req.method, signed.join(";"));
    let amz_date = req.headers.get("x-amz-date").map(String::as_str).unwrap_or("");
    let to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}", sha256_hex(canonical.as_bytes()));
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    hex(&hmac(&key, to_sign.as_bytes()))
}

/// Accepts a request signed by `key_id` for SageMaker MLflow, as SageMaker would.
fn check_sigv4(
    req: &Request,
    key_id: &str,
    secret: &str,
    token: Option<&str>,
    region: &str,
    service: &str,
    arn: &str,
) -> Result<(), String> {
    let auth = req.headers.get("authorization").ok_or("no authorization header")?;
    let fields = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not AWS4-HMAC-SHA256")?;
    let field = |name: &str| fields.split(", ").find_map(|f| f.strip_prefix(name)?.strip_prefix('=')).ok_or(format!("no {name}"));
    let (credential, signed, sig) = (field("Credential")?, field("SignedHeaders")?, field("Signature")?);
    let amz_date = req.headers.get("x-amz-date").ok_or("no x-amz-date")?;
    let date = amz_date.get(..8).ok_or("bad x-amz-date")?;
    let want = format!("{key_id}/{date}/{region}/{service}/aws4_request");
    if credential != want {
        return Err(format!("credential {credential}, expected {want}"));
    }
    let signed: Vec<&str> = signed.split(';').collect();
    let mut needed = vec!["host", "x-amz-date", "x-amz-content-sha256", "x-mlflow-sm-tracking-server-arn"];
    needed.extend(token.map(|_| "x-amz-security-token"));
    if let Some(missing) = needed.iter().find(|h| !signed.contains(h)) {
        return Err(format!("{missing} is not signed ({signed:?})"));
    }
    if req.headers.get("x-mlflow-sm-tracking-server-arn").map(String::as_str) != Some(arn) {
        return Err("wrong tracking server ARN".into());
    }
    if token.is_some() && req.headers.get("x-amz-security-token").map(String::as_str) != token {
        return Err("wrong session token".into());
    }
    if req.headers.get("x-amz-content-sha256") != Some(&sha256_hex(&req.body)) {
        return Err("x-amz-content-sha256 is not the body's hash".into());
    }
    let expected = signature(req, &signed, secret, (date, region, service));
    if sig != expected {
        return Err(format!("signature {sig}, expected {expected}"));
    }
    Ok(())
}

/// The checker agrees with AWS's signing test suite (`post-vanilla-query`, as
/// published with the aws-sigv4 crate): credentials AKIDEXAMPLE, us-east-1, `service`.
#[test]
fn the_gateways_sigv4_check_computes_awss_published_signature() {
    let req = Request {
        method: "POST".into(),
        target: "/?Param1=value1".into(),
        headers: [("host", "example.amazonaws.com"), ("x-amz-date", "20150830T123600Z")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: vec![],
    };
    let sig = signature(
        &req,
        &["host", "x-amz-date"],
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ("20150830", "us-east-1", "service"),
    );
    assert_eq!(sig, "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11");
}
