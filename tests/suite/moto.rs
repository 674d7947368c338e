//! Test support for the AWS provider: a moto server on a free 127.0.0.1 port,
//! and a small proxy between the SDK and moto that answers what moto lacks
//! (SSM DescribeInstanceInformation, the Deep Learning AMI parameter) and
//! injects faults on demand: capacity errors for chosen zones, throttling for
//! the first N calls (or of one action), a dropped connection, an answer lost
//! after moto acted, an endpoint that never answers, refused credentials, SSM
//! agents that never come online. It stands in for the placement group moto
//! does not model: the stack's outputs name one (as CloudFormation's would),
//! DescribePlacementGroups finds it, unless it is made missing. Every request
//! is logged.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The placement group the stack's outputs name (moto drops AWS::EC2::PlacementGroup).
pub const PLACEMENT_GROUP: &str = "nixl-test-PlacementGroup-1A2B3C";

/// A moto AMI id, so RunInstances finds its image.
pub const AMI: &str = "ami-03cf127a";

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Moto {
    /// Starts `moto_server` (pip install 'moto[server]'); panics with the fix if it is missing.
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server not found: run `python3 -m pip install 'moto[server]'` (.ci/run does)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on 127.0.0.1:{port} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }
}

#[derive(Default)]
pub struct Faults {
    /// RunInstances in these zones fails with InsufficientInstanceCapacity.
    pub capacity_zones: HashSet<String>,
    /// RunInstances signed for these regions fails with InsufficientInstanceCapacity in every
    /// zone (moto serves every region at one endpoint: the region is the signature's scope).
    pub capacity_regions: HashSet<String>,
    /// After this many launches went through, RunInstances fails with InsufficientInstanceCapacity
    /// in every zone (capacity that runs out while node sets launch).
    pub capacity_after: Option<usize>,
    /// Spot requests (RunInstances with InstanceMarketOptions.MarketType=spot) fail with
    /// InsufficientInstanceCapacity in every zone; on-demand ones go through.
    pub no_spot: bool,
    /// Launches that went through so far (for `capacity_after`).
    pub launched: usize,
    /// Zones the capacity message suggests ("... choosing us-east-1c").
    pub suggest: Vec<String>,
    /// RunInstances fails with VcpuLimitExceeded (an account quota) in every zone.
    pub vcpu_limit: bool,
    /// The next N calls (of any service but S3) are throttled.
    pub throttle: usize,
    /// The next N connections are dropped without an answer.
    pub drop: usize,
    /// Calls of these actions are throttled, the next N of each.
    pub throttle_action: HashMap<String, usize>,
    /// Calls of these actions reach moto, which acts, but the answer is lost (the next N of each).
    pub lose: HashMap<String, usize>,
    /// Every call is read and never answered (the connection stays open).
    pub hang: bool,
    /// Every call is refused as signed with an unknown access key.
    pub bad_credentials: bool,
    /// EC2 actions the caller is not allowed (UnauthorizedOperation).
    pub deny: HashSet<String>,
    /// No SSM agent ever reports online.
    pub ssm_offline: bool,
    /// The stack's placement group is gone (deleted outside nixl).
    pub placement_group_missing: bool,
    /// Runs SSM commands on the instances (moto only records them): `ssm_agent.rs`.
    pub agent: Option<Arc<crate::ssm_agent::Agent>>,
    /// Commands "fail" with exit code 3 and more output than SSM keeps inline: the
    /// inline part is cut, the whole of it is in the bucket, ending with this line.
    pub long_output: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub service: String,
    /// The region the request was signed for (its SigV4 credential scope).
    pub region: String,
    pub action: String,
    pub body: String,
    pub at: Instant,
    /// What the proxy did: "forwarded", "capacity", "throttled", "dropped", "answered", "lost",
    /// "hung", "refused".
    pub outcome: String,
}

/// A placement group created through EC2: its strategy and tags (key, value).
pub type Group = (String, Vec<(String, String)>);

#[derive(Clone)]
pub struct Proxy {
    pub port: u16,
    upstream: u16,
    pub faults: Arc<Mutex<Faults>>,
    pub log: Arc<Mutex<Vec<Logged>>>,
    /// Placement groups created through EC2 (node sets beyond the first): name, strategy, tags.
    pub groups: Arc<Mutex<HashMap<String, Group>>>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Proxy { port, upstream, faults: Arc::default(), log: Arc::default(), groups: Arc::default() };
        let q = p.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let q = q.clone();
                std::thread::spawn(move || q.serve(conn, upstream));
            }
        });
        p
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn calls(&self, action: &str) -> Vec<Logged> {
        self.log.lock().unwrap().iter().filter(|l| l.action == action).cloned().collect()
    }

    fn serve(&self, conn: TcpStream, upstream: u16) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let Some((head, body)) = read_request(&mut reader) else { return };
        let (service, action) = classify(&head, &body);
        let raw = String::from_utf8_lossy(&body).into_owned();
        // Query protocols (EC2, CloudFormation) send forms; SSM sends JSON, which must stay as it is.
        let body_text =
            if header(&head, "content-type").is_some_and(|c| c.contains("urlencoded")) { url_decode(&raw) } else { raw };
        let region = signed_region(&head);
        let (outcome, reply) = self.decide(&service, &region, &action, &body_text);
        self.log.lock().unwrap().push(Logged {
            service: service.clone(),
            region,
            action: action.clone(),
            body: body_text.clone(),
            at: Instant::now(),
            outcome: outcome.to_string(),
        });
        let mut out = conn;
        match reply {
            Reply::Drop => {}
            Reply::Hang => std::thread::sleep(Duration::from_secs(120)),
            Reply::Lose => {
                let _ = forward(&head, &body, upstream);
            }
            Reply::Answer(bytes) => {
                let _ = out.write_all(&bytes);
            }
            Reply::Forward => {
                if let Some(resp) = forward(&head, &body, upstream) {
                    let resp = if action == "DescribeStacks" { with_placement_group_output(resp) } else { resp };
                    if action == "SendCommand" {
                        self.hand_to_agent(&resp, &body_text);
                    }
                    if action == "TerminateInstances" {
                        self.tell_agent_terminated(&body_text);
                    }
                    let _ = out.write_all(&resp);
                }
            }
        }
        let _ = out.flush();
    }

    fn decide(&self, service: &str, region: &str, action: &str, body: &str) -> (&'static str, Reply) {
        let mut f = self.faults.lock().unwrap();
        if f.drop > 0 {
            f.drop -= 1;
            return ("dropped", Reply::Drop);
        }
        if f.hang {
            return ("hung", Reply::Hang);
        }
        if f.bad_credentials {
            return ("refused", Reply::Answer(bad_credentials(service)));
        }
        if f.deny.contains(action) {
            let msg = "You are not authorized to perform this operation.";
            return ("denied", Reply::Answer(ec2_error(403, "UnauthorizedOperation", msg)));
        }
        if f.throttle > 0 && service != "s3" {
            f.throttle -= 1;
            return ("throttled", Reply::Answer(throttle(service)));
        }
        if let Some(n) = f.throttle_action.get_mut(action).filter(|n| **n > 0) {
            *n -= 1;
            return ("throttled", Reply::Answer(throttle(service)));
        }
        if let Some(n) = f.lose.get_mut(action).filter(|n| **n > 0) {
            *n -= 1;
            return ("lost", Reply::Lose);
        }
        if action == "RunInstances" && f.vcpu_limit {
            // EC2's own words for a vCPU quota of 0 (a new account's G quota).
            let msg = "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.";
            return ("quota", Reply::Answer(ec2_error(400, "VcpuLimitExceeded", msg)));
        }
        if action == "RunInstances" {
            let zone = field(body, "Placement.AvailabilityZone").unwrap_or_default();
            let ran_out = f.capacity_after.is_some_and(|n| f.launched >= n)
                || (f.no_spot && body.contains("InstanceMarketOptions.MarketType=spot"))
                || f.capacity_regions.contains(region);
            let refused = f.capacity_zones.iter().find(|z| body.contains(&format!("Placement.AvailabilityZone={z}"))).cloned();
            if let Some(z) = refused.or(ran_out.then_some(zone)) {
                let ty = field(body, "InstanceType").unwrap_or_default();
                let hint = if f.suggest.is_empty() { String::new() } else { format!(" or choosing {}.", f.suggest.join(", ")) };
                let msg = format!("We currently do not have sufficient {ty} capacity in the Availability Zone you requested ({z}). Our system will be working on provisioning additional capacity. You can currently get {ty} capacity by not specifying an Availability Zone in your request{hint}");
                return ("capacity", Reply::Answer(ec2_error(500, "InsufficientInstanceCapacity", &msg)));
            }
            f.launched += 1;
        }
        let long_output = f.long_output.clone();
        let agent = f.agent.clone();
        let ssm_offline = f.ssm_offline;
        let pg_missing = f.placement_group_missing;
        drop(f);
        if action == "DescribePlacementGroups" {
            return ("answered", Reply::Answer(self.placement_groups(body, pg_missing)));
        }
        if action == "CreatePlacementGroup" || action == "DeletePlacementGroup" {
            return ("answered", Reply::Answer(self.change_placement_group(action, body)));
        }
        if let (Some(tail), "GetCommandInvocation") = (long_output, action) {
            return ("answered", Reply::Answer(self.long_invocation(body, &tail)));
        }
        if let (Some(agent), "SendCommand") = (&agent, action) {
            if let Some(id) = agent.refuses(body) {
                let msg = format!("Instances [[{id}]] not in a valid state for account 123456789012");
                let body = serde_json::json!({"__type": "InvalidInstanceId", "message": msg}).to_string();
                return (
                    "refused",
                    Reply::Answer(response(400, "application/x-amz-json-1.1", "x-amzn-ErrorType: InvalidInstanceId\r\n", &body)),
                );
            }
        }
        if let (Some(agent), "GetCommandInvocation") = (&agent, action) {
            if let Some(v) = agent.invocation(body) {
                return ("answered", Reply::Answer(json_ok(&v)));
            }
        }
        if action == "DescribeInstanceInformation" {
            // moto has no SSM inventory: every instance asked about is online.
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let ids: Vec<String> = v["Filters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| f["Key"] == "InstanceIds")
                .flat_map(|f| f["Values"].as_array().cloned().unwrap_or_default())
                .filter_map(|x| x.as_str().map(String::from))
                .collect();
            let list: Vec<serde_json::Value> = ids
                .iter()
                .filter(|_| !ssm_offline)
                .map(|i| serde_json::json!({"InstanceId": i, "PingStatus": "Online", "PlatformType": "Linux"}))
                .collect();
            return ("answered", Reply::Answer(json_ok(&serde_json::json!({ "InstanceInformationList": list }))));
        }
        if action == "GetParameter" && body.contains("/aws/service/deeplearning/") {
            let name = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| v["Name"].as_str().map(String::from));
            let p = serde_json::json!({"Parameter": {"Name": name, "Type": "String", "Value": AMI, "Version": 1}});
            return ("answered", Reply::Answer(json_ok(&p)));
        }
        ("forwarded", Reply::Forward)
    }
}

impl Proxy {
    /// Hands a command moto accepted (its answer names the command id) to the agent, if there is one.
    fn hand_to_agent(&self, resp: &[u8], request: &str) {
        let Some(agent) = self.faults.lock().unwrap().agent.clone() else { return };
        let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else { return };
        let v: serde_json::Value = serde_json::from_slice(&resp[split + 4..]).unwrap_or_default();
        if let Some(id) = v["Command"]["CommandId"].as_str() {
            agent.start(id, request);
        }
    }

    /// Tells the agent which instances a TerminateInstances call (its form) ended.
    fn tell_agent_terminated(&self, form: &str) {
        let Some(agent) = self.faults.lock().unwrap().agent.clone() else { return };
        let ids: Vec<String> = form
            .split('&')
            .filter_map(|kv| kv.strip_prefix("InstanceId.")?.split_once('=').map(|(_, v)| v.to_string()))
            .collect();
        agent.terminate(&ids);
    }

    /// A failed invocation whose output overflowed SSM's inline limit, as SSM reports it:
    /// the first 24,000 characters inline, the whole output in the command's S3 location.
    fn long_invocation(&self, body: &str, tail: &str) -> Vec<u8> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let (cmd, iid) = (v["CommandId"].as_str().unwrap_or(""), v["InstanceId"].as_str().unwrap_or(""));
        let send = self.calls("SendCommand").pop().map(|l| l.body).unwrap_or_default();
        let send: serde_json::Value = serde_json::from_str(&send).unwrap_or_default();
        let bucket = send["OutputS3BucketName"].as_str().unwrap_or("");
        let prefix = send["OutputS3KeyPrefix"].as_str().unwrap_or("");
        let full = format!("{}\n{tail}\n", "x".repeat(30_000));
        let key = format!("/{bucket}/{prefix}/{cmd}/{iid}/awsrunShellScript/0.awsrunShellScript/stdout");
        let head = format!("PUT {key} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n", full.len());
        let upstream = self.upstream;
        let _ = forward(&head, full.as_bytes(), upstream);
        let inv = serde_json::json!({
            "CommandId": cmd, "InstanceId": iid, "Status": "Failed", "StatusDetails": "Failed",
            "ResponseCode": 3, "StandardOutputContent": &full[..24_000], "StandardErrorContent": "",
            "StandardOutputUrl": format!("https://s3.amazonaws.com{key}"),
        });
        json_ok(&inv)
    }
}

enum Reply {
    Forward,
    Answer(Vec<u8>),
    Drop,
    /// Forward to moto, then close without passing its answer on.
    Lose,
    /// Keep the connection open and never answer.
    Hang,
}

/// Reads one HTTP/1.1 request: the head as text, the body by length or chunks.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
    let mut body = vec![];
    if let Some(n) = len {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    } else if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        // Re-frame as a plain body for moto.
        head = head.replace("Transfer-Encoding: chunked\r\n", "").replace("transfer-encoding: chunked\r\n", "");
        head.insert_str(head.len() - 2, &format!("content-length: {}\r\n", body.len()));
    }
    Some((head, body))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The region of the SigV4 credential scope (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`).
fn signed_region(head: &str) -> String {
    header(head, "authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("unknown")
        .to_string()
}

/// The service from the SigV4 credential scope, the action from the target header, form or path.
fn classify(head: &str, body: &[u8]) -> (String, String) {
    let service = header(head, "authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string();
    if let Some(t) = header(head, "x-amz-target") {
        return (service, t.rsplit('.').next().unwrap_or(t).to_string());
    }
    let text = String::from_utf8_lossy(body);
    if let Some(a) = field(&text, "Action") {
        return (service, a);
    }
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
    (service, format!("{method} {path}"))
}

fn field(form: &str, name: &str) -> Option<String> {
    form.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(String::from))
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends the request to moto on a fresh connection and returns its answer, marked `Connection: close`.
fn forward(head: &str, body: &[u8], upstream: u16) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    let head: String = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect::<String>();
    let head = head.trim_end_matches("\r\n").to_string() + "\r\nConnection: close\r\n\r\n";
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(body).ok()?;
    let mut resp = vec![];
    up.read_to_end(&mut resp).ok()?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let rhead = String::from_utf8_lossy(&resp[..split]).to_string();
    let rhead: String =
        rhead.lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).map(|l| format!("{l}\r\n")).collect();
    let mut out = rhead.into_bytes();
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&resp[split + 4..]);
    Some(out)
}

fn response(status: u16, content_type: &str, extra: &str, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        _ => "Internal Server Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn ec2_error(status: u16, code: &str, msg: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{msg}</Message></Error></Errors><RequestID>proxy-0001</RequestID></Response>"
    );
    response(status, "text/xml", "", &body)
}

fn json_ok(v: &serde_json::Value) -> Vec<u8> {
    response(200, "application/x-amz-json-1.1", "", &v.to_string())
}

fn throttle(service: &str) -> Vec<u8> {
    match service {
        "ec2" => ec2_error(503, "RequestLimitExceeded", "Request limit exceeded."),
        "ssm" => {
            let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
            response(400, "application/x-amz-json-1.1", "x-amzn-ErrorType: ThrottlingException\r\n", body)
        }
        _ => {
            let body = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>proxy-0002</RequestId></ErrorResponse>";
            response(400, "text/xml", "", body)
        }
    }
}

/// Each service's answer to a request signed with an access key it does not know.
fn bad_credentials(service: &str) -> Vec<u8> {
    match service {
        "ec2" => ec2_error(401, "AuthFailure", "AWS was not able to validate the provided access credentials"),
        "ssm" => {
            let body =
                r#"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#;
            response(400, "application/x-amz-json-1.1", "x-amzn-ErrorType: UnrecognizedClientException\r\n", body)
        }
        _ => {
            let body = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>proxy-0003</RequestId></ErrorResponse>";
            response(403, "text/xml", "", body)
        }
    }
}

impl Proxy {
    /// EC2's answer to DescribePlacementGroups. By name: the stack's own (a cluster group, unless
    /// made missing) and those created through EC2; any other name is
    /// InvalidPlacementGroup.Unknown. By tag filter: the created ones that carry the tag.
    fn placement_groups(&self, body: &str, missing: bool) -> Vec<u8> {
        let names: Vec<&str> =
            body.split('&').filter_map(|kv| kv.strip_prefix("GroupName.")?.split_once('=').map(|(_, v)| v)).collect();
        let created = self.groups.lock().unwrap().clone();
        let mut found: Vec<(String, Group)> = vec![];
        for n in &names {
            match created.get(*n) {
                Some(g) => found.push((n.to_string(), g.clone())),
                None if *n == PLACEMENT_GROUP && !missing => found.push((n.to_string(), ("cluster".into(), vec![]))),
                None => {
                    return ec2_error(400, "InvalidPlacementGroup.Unknown", &format!("The Placement Group '{n}' is unknown."))
                }
            }
        }
        if names.is_empty() {
            let key = field(body, "Filter.1.Name").and_then(|k| k.strip_prefix("tag:").map(String::from));
            let value = field(body, "Filter.1.Value.1");
            for (n, g) in created {
                if g.1.iter().any(|(k, v)| Some(k) == key.as_ref() && Some(v) == value.as_ref()) {
                    found.push((n, g));
                }
            }
        }
        let items: String = found
            .iter()
            .map(|(n, (strategy, tags))| {
                let tags: String =
                    tags.iter().map(|(k, v)| format!("<item><key>{k}</key><value>{v}</value></item>")).collect();
                format!("<item><groupName>{n}</groupName><strategy>{strategy}</strategy><state>available</state><groupId>pg-0123456789abcdef0</groupId><tagSet>{tags}</tagSet></item>")
            })
            .collect();
        let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribePlacementGroupsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>proxy-0004</requestId><placementGroupSet>{items}</placementGroupSet></DescribePlacementGroupsResponse>");
        response(200, "text/xml", "", &body)
    }

    /// CreatePlacementGroup (with its tags) and DeletePlacementGroup, as EC2 answers them.
    fn change_placement_group(&self, action: &str, body: &str) -> Vec<u8> {
        let name = field(body, "GroupName").unwrap_or_default();
        let mut groups = self.groups.lock().unwrap();
        if action == "DeletePlacementGroup" {
            if groups.remove(&name).is_none() {
                return ec2_error(400, "InvalidPlacementGroup.Unknown", &format!("The Placement Group '{name}' is unknown."));
            }
            let ok = "<DeletePlacementGroupResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>proxy-0005</requestId><return>true</return></DeletePlacementGroupResponse>";
            return response(200, "text/xml", "", ok);
        }
        if groups.contains_key(&name) || name == PLACEMENT_GROUP {
            return ec2_error(400, "InvalidPlacementGroup.Duplicate", &format!("The Placement Group '{name}' already exists."));
        }
        let tags: Vec<(String, String)> = (1..)
            .map_while(|i| {
                let k = field(body, &format!("TagSpecification.1.Tag.{i}.Key"))?;
                Some((k, field(body, &format!("TagSpecification.1.Tag.{i}.Value")).unwrap_or_default()))
            })
            .collect();
        groups.insert(name.clone(), (field(body, "Strategy").unwrap_or_default(), tags));
        let ok = format!("<CreatePlacementGroupResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>proxy-0006</requestId><placementGroup><groupName>{name}</groupName></placementGroup></CreatePlacementGroupResponse>");
        response(200, "text/xml", "", &ok)
    }
}

/// Adds the placement group output CloudFormation would report to moto's DescribeStacks answer.
fn with_placement_group_output(resp: Vec<u8>) -> Vec<u8> {
    let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else { return resp };
    let body = String::from_utf8_lossy(&resp[split + 4..]).into_owned();
    if !body.contains("<Outputs>") || body.contains("PlacementGroupName") {
        return resp;
    }
    let member = format!(
        "<Outputs><member><OutputKey>PlacementGroupName</OutputKey><OutputValue>{PLACEMENT_GROUP}</OutputValue></member>"
    );
    let body = body.replace("<Outputs>", &member);
    let head: String = String::from_utf8_lossy(&resp[..split])
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}
