//! Secrets against moto through the real SDK: apply reads `secret("env:...")` from its environment
//! and `secret("ssm:...")` from SSM before creating anything, keeps each as a SecureString under
//! the stack's prefix, and the command SSM runs reads it into the step's environment with the real
//! aws CLI; the value is in no script uploaded, command sent, state, plan or output; destroy deletes
//! the stack's secrets. The commands SSM would run are run here, against moto, to show the step
//! receives the value.

use crate::aws::{campaign, iam_match, iam_policy, state, strings, text, world, DESTROY};
use crate::aws_refresh::moto_conf;
use crate::moto::{Moto, Proxy};
use crate::secrets::{files_nixl_writes, sha256_hex, TOKEN, VAR};
use std::path::Path;
use std::process::Output;

const TEAM: &str = "team-SECRET-456";
const TEAM_PARAMETER: &str = "/team/hf-token";
const STEP: &str = "setup.node1.01-hello";

/// The test campaign of `aws.rs` whose first step reads two secrets and writes their hashes.
fn campaign_with_secrets(name: &str) -> std::path::PathBuf {
    let dir = campaign(name, &["us-east-1a"]);
    let file = dir.join("aws.nixl");
    let step = r#"  step "01-hello" {
    name = "Read the tokens"
    env  = { TOKEN = secret("env:NIXL_TEST_TOKEN"), TEAM = secret("ssm:/team/hf-token") }
    run  = '''
printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1 > token.sha256
printf '%s' "$TEAM" | sha256sum | cut -d' ' -f1 > team.sha256
echo "the tokens are $TOKEN and $TEAM"
'''
  }"#;
    let source = std::fs::read_to_string(&file).unwrap();
    let old = "  step \"01-hello\" {\n    name = \"Say hello\"\n    run  = \"echo hello\"\n  }";
    assert!(source.contains(old));
    std::fs::write(&file, source.replace(old, step)).unwrap();
    dir
}

fn with_token(dir: &Path, proxy: &Proxy, args: &[&str], token: Option<&str>) -> Output {
    let mut c = crate::aws::aws_cmd(dir, proxy, args);
    c.env_remove(VAR);
    if let Some(t) = token {
        c.env(VAR, t);
    }
    c.output().unwrap()
}

struct Parameter {
    value: String,
    secure: bool,
    tags: Vec<(String, String)>,
}

/// A parameter as moto holds it (decrypted), or None.
fn parameter(moto: &Moto, name: &str) -> Option<Parameter> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ssm = aws_sdk_ssm::Client::new(&moto_conf(moto).await);
        let p = ssm.get_parameter().name(name).with_decryption(true).send().await.ok()?;
        let p = p.parameter()?;
        let tags = ssm
            .list_tags_for_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .unwrap();
        Some(Parameter {
            value: p.value().unwrap_or_default().to_string(),
            secure: p.r#type() == Some(&aws_sdk_ssm::types::ParameterType::SecureString),
            tags: tags.tag_list().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
        })
    })
}

fn put_team_parameter(moto: &Moto) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ssm = aws_sdk_ssm::Client::new(&moto_conf(moto).await);
        let secure = aws_sdk_ssm::types::ParameterType::SecureString;
        ssm.put_parameter().name(TEAM_PARAMETER).value(TEAM).r#type(secure).send().await.unwrap();
    });
}

/// Every object in the bucket under `prefix`, with its bytes.
fn objects(moto: &Moto, bucket: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let conf = moto_conf(moto).await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&conf).force_path_style(true).build());
        let list = s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
        let mut out = vec![];
        for o in list.contents() {
            let key = o.key().unwrap().to_string();
            let body = s3.get_object().bucket(bucket).key(&key).send().await.unwrap().body.collect().await.unwrap();
            out.push((key, body.into_bytes().to_vec()));
        }
        out
    })
}

/// The commands SSM runs for the step, run here as AWS-RunShellScript would run them on a node
/// (one bash script), the node's directories moved under `root`, with the real aws CLI against moto.
fn run_as_the_node(moto: &Moto, commands: &[String], root: &Path) -> Output {
    let (work, scripts) = (root.join("opt-nixl"), root.join("var-lib-nixl-scripts"));
    let script = commands
        .join("\n")
        .replace("/opt/nixl", work.to_str().unwrap())
        .replace("/var/lib/nixl/scripts", scripts.to_str().unwrap());
    std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", moto.port))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", root.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", root.join("no-aws-credentials"))
        .env_remove(VAR)
        .output()
        .unwrap()
}

#[test]
fn setup_secrets_reach_the_node_through_ssm_and_nothing_else_holds_them() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign_with_secrets("aws-secrets");
    let apply = ["apply", "aws.nixl", "--provider", "aws", "--auto-approve", "--target", STEP];

    // Neither can be read: both named, at their `secret(...)`, and nothing is created.
    let out = with_token(&dir, &proxy, &apply, None);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("secret(\"env:NIXL_TEST_TOKEN\"): the environment variable NIXL_TEST_TOKEN is not set"), "{t}");
    assert!(t.contains("secret(\"ssm:/team/hf-token\"): the SSM parameter /team/hf-token does not exist"), "{t}");
    assert_eq!(t.matches("error[nixl::E0503]").count(), 2, "{t}");
    assert!(proxy.calls("CreateStack").is_empty() && proxy.calls("RunInstances").is_empty());
    assert!(world(&moto).stacks.is_empty());

    put_team_parameter(&moto);
    let mut printed = String::new();
    let out = with_token(&dir, &proxy, &apply, Some(TOKEN));
    printed += &text(&out);
    assert!(out.status.success(), "{printed}");
    assert_eq!(state(&dir)["actions"][STEP]["status"], "done");

    // Kept for the nodes under the stack's prefix, encrypted, tagged with the stack.
    for (name, value) in
        [("/nixl/nixl-test/secrets/env/NIXL_TEST_TOKEN", TOKEN), ("/nixl/nixl-test/secrets/ssm/team/hf-token", TEAM)]
    {
        let p = parameter(&moto, name).unwrap_or_else(|| panic!("{name} was not put"));
        assert_eq!(p.value, value);
        assert!(p.secure, "{name} is not a SecureString");
        assert!(p.tags.contains(&("nixl:stack".into(), "nixl-test".into())), "{name}: {:?}", p.tags);
    }

    // Sent: the parameters' names, never the values.
    let sends = proxy.calls("SendCommand");
    let bodies: Vec<serde_json::Value> = sends.iter().map(|s| serde_json::from_str(&s.body).unwrap()).collect();
    let step = bodies
        .iter()
        .find(|b| b["Parameters"]["commands"].to_string().contains("aws ssm get-parameter"))
        .expect("the step's command reads its secrets");
    let commands: Vec<String> =
        step["Parameters"]["commands"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert!(commands.iter().any(|c| c.contains("/nixl/nixl-test/secrets/env/NIXL_TEST_TOKEN")), "{commands:?}");
    for s in &sends {
        assert!(!s.body.contains(TOKEN) && !s.body.contains(TEAM), "a command holds a secret: {}", s.body);
    }
    // Uploaded: no script holds one.
    let bucket = step["OutputS3BucketName"].as_str().unwrap();
    let scripts = objects(&moto, bucket, "nixl/scripts/");
    assert!(!scripts.is_empty());
    for (key, bytes) in &scripts {
        let body = String::from_utf8_lossy(bytes);
        assert!(!body.contains(TOKEN) && !body.contains(TEAM), "{key} holds a secret");
    }

    // The node receives them: SSM's commands, run with the real aws CLI against moto.
    let node = crate::support::scratch("aws-secrets-node");
    let out = run_as_the_node(&moto, &commands, &node);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let work = node.join("opt-nixl");
    assert_eq!(std::fs::read_to_string(work.join("token.sha256")).unwrap().trim(), sha256_hex(TOKEN.as_bytes()));
    assert_eq!(std::fs::read_to_string(work.join("team.sha256")).unwrap().trim(), sha256_hex(TEAM.as_bytes()));

    // Plans and the operator's policy show no value; the policy allows every SSM call made.
    for args in [vec!["plan", "aws.nixl"], vec!["plan", "aws.nixl", "--json"], vec!["plan", "aws.nixl", "--refresh"]] {
        let out = with_token(&dir, &proxy, &args, Some(TOKEN));
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        printed += &text(&out);
    }
    let policy = iam_policy(&dir);
    let statements = policy["Statement"].as_array().unwrap();
    let reads = statements.iter().find(|s| s["Sid"] == "SecretsTheFileReads").expect("the file's parameter");
    assert_eq!(strings(&reads["Resource"]), ["arn:aws:ssm:us-east-1:*:parameter/team/hf-token"]);
    let out = with_token(&dir, &proxy, DESTROY, None);
    printed += &text(&out);
    assert!(out.status.success(), "{printed}");
    let allowed: Vec<String> = statements.iter().flat_map(|s| strings(&s["Action"])).collect();
    let mut ssm_calls: Vec<String> =
        proxy.log.lock().unwrap().iter().filter(|l| l.service == "ssm").map(|l| format!("ssm:{}", l.action)).collect();
    ssm_calls.sort();
    ssm_calls.dedup();
    for needed in ["ssm:PutParameter", "ssm:AddTagsToResource", "ssm:GetParameter", "ssm:GetParametersByPath"] {
        assert!(ssm_calls.iter().any(|c| c == needed), "{needed} was not called: {ssm_calls:?}");
    }
    let missing: Vec<&String> = ssm_calls.iter().filter(|c| !allowed.iter().any(|a| iam_match(a, c))).collect();
    assert!(missing.is_empty(), "calls the policy does not allow: {missing:?}");
    assert!(!printed.contains(TOKEN) && !printed.contains(TEAM), "printed: {printed}");

    // Destroy deleted the stack's secrets, not the team's own parameter.
    assert!(parameter(&moto, "/nixl/nixl-test/secrets/env/NIXL_TEST_TOKEN").is_none());
    assert!(parameter(&moto, "/nixl/nixl-test/secrets/ssm/team/hf-token").is_none());
    assert_eq!(parameter(&moto, TEAM_PARAMETER).map(|p| p.value), Some(TEAM.to_string()));

    // Every file nixl wrote, the state's backup included.
    let files = files_nixl_writes(&dir.join(".nixl"));
    assert!(files.iter().any(|f| f.ends_with("state.json.backup")), "{files:?}");
    for f in files {
        let body = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(!body.contains(TOKEN) && !body.contains(TEAM), "{} holds a secret", f.display());
    }
}
