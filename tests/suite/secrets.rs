//! Secrets on the local provider, through the binary: a setup step's `env` holding
//! `secret("env:...")` gets the value in its process environment, and the value is in no state
//! file, plan, log, script, stored output or result nixl writes; a missing one stops apply before
//! anything is created, naming it.

use crate::local::{copy_examples, text};
use crate::support::nixl;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const TOKEN: &str = "tok-SENSITIVE-123";
pub const VAR: &str = "NIXL_TEST_TOKEN";

/// The local demo with a step that reads the token (writing its hash and length, and the token
/// itself into a file of the node, as a login would) and a tool whose output holds that file.
fn demo_with_a_secret(name: &str) -> PathBuf {
    let dir = copy_examples(name);
    let file = dir.join("local-demo.nixl");
    let source = std::fs::read_to_string(&file).unwrap();
    let step = r#"    run     = ["mkdir -p results", "touch {marker}"]
  }
  step "03-token" {
    name = "Use the token"
    env  = { TOKEN = secret("env:NIXL_TEST_TOKEN"), MODE = "plain" }
    run  = '''
printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1 > token.sha256
printf '%s' "${#TOKEN}" > token.len
printf '%s' "$TOKEN" > token.txt
echo "the token is $TOKEN"
echo "the token is $TOKEN" >&2
'''
  }"#;
    let tool = r#"tool token_echo {
  description = "A tool whose output holds what a step left on the node"
  kind        = baseline
  nodes       = 1
  slug        = "token-echo"
  duration    = 5s
  run         = "printf '\{\"seen\": 1, \"note\": \"%s\"\}' \"$(cat token.txt)\" > {out}"
}

tool clock_check {"#;
    let source = source
        .replace("    run     = [\"mkdir -p results\", \"touch {marker}\"]\n  }", step)
        .replace("tool clock_check {", tool)
        .replace("steps = [clock_check]", "steps = [clock_check, token_echo]");
    std::fs::write(&file, source).unwrap();
    dir
}

fn nixl_in(dir: &Path, args: &[&str], token: Option<&str>) -> Output {
    let mut c: Command = nixl();
    c.current_dir(dir).args(args).env_remove(VAR);
    if let Some(t) = token {
        c.env(VAR, t);
    }
    c.output().unwrap()
}

/// Every file under `dir`, but the nodes' own disks (`.nixl/<experiment>/local/nodes`): what a
/// step writes there is the step's, as on a real node.
pub fn files_nixl_writes(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.ends_with("local/nodes") {
            continue;
        }
        if p.is_dir() {
            out.extend(files_nixl_writes(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_setup_secret_reaches_its_step_and_nothing_nixl_writes_or_prints() {
    let dir = demo_with_a_secret("secret-local");
    let target = ["--target", "demo-baseline-token-echo"];
    let apply: Vec<&str> = [&["apply", "local-demo.nixl", "--provider", "local", "--auto-approve"], &target[..]].concat();

    // Not set: a coded diagnostic at the secret, and nothing created.
    let out = nixl_in(&dir, &apply, None);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("error[nixl::E0503]") && t.contains("secret(\"env:NIXL_TEST_TOKEN\")"), "{t}");
    assert!(t.contains("the environment variable NIXL_TEST_TOKEN is not set"), "{t}");
    assert!(t.contains("apply stopped before creating anything"), "{t}");
    assert!(!dir.join(".nixl/demo/local").exists(), "something was created");

    // Set: the step gets it; its output, the tool's result and the state hold `***`.
    let mut printed = String::new();
    let out = nixl_in(&dir, &apply, Some(TOKEN));
    printed += &text(&out);
    assert!(out.status.success(), "{printed}");
    let node = dir.join(".nixl/demo/local/nodes/node1");
    assert_eq!(std::fs::read_to_string(node.join("token.sha256")).unwrap().trim(), sha256_hex(TOKEN.as_bytes()));
    assert_eq!(std::fs::read_to_string(node.join("token.len")).unwrap(), TOKEN.len().to_string());
    assert_eq!(std::fs::read_to_string(node.join("token.txt")).unwrap(), TOKEN, "the step's own file on the node");
    let store = nixl::results::Store::new(&dir.join(".nixl/results/demo"));
    let rec = store.get("demo-baseline-token-echo").expect("the tool's result");
    let raw = std::fs::read_to_string(dir.join(".nixl/results/demo").join(rec.raw)).unwrap();
    assert!(raw.contains("\"note\": \"***\""), "the stored output is redacted: {raw}");

    // A step that prints the token and fails: its stored error holds `***`.
    let file = dir.join("local-demo.nixl");
    let leak = "  step \"04-leak\" {\n    name = \"Fail loudly\"\n    env  = { TOKEN = secret(\"env:NIXL_TEST_TOKEN\") }\n    run  = '''echo \"about to fail with $TOKEN\" >&2; exit 3'''\n  }\n}\n\ntool token_echo {";
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replacen("}\n\ntool token_echo {", leak, 1)).unwrap();
    let leak = ["apply", "local-demo.nixl", "--provider", "local", "--auto-approve", "--target", "setup.node1.04-leak"];
    let out = nixl_in(&dir, &leak, Some(TOKEN));
    printed += &text(&out);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(".nixl/demo/state.json")).unwrap()).unwrap();
    let error = state["actions"]["setup.node1.04-leak"]["error"].as_str().unwrap();
    assert!(error.contains("about to fail with ***"), "{error}");

    // What nixl prints and shows: plans (text and JSON), the pattern's commands, status, results.
    for args in [
        vec!["plan", "local-demo.nixl"],
        vec!["plan", "local-demo.nixl", "--json"],
        vec!["plan", "local-demo.nixl", "--refresh"],
        vec!["show", "local-demo.nixl", "demo-baseline-token-echo", "--commands"],
        vec!["status", "local-demo.nixl"],
        vec!["results", "local-demo.nixl", "--format", "json"],
    ] {
        let out = nixl_in(&dir, &args, Some(TOKEN));
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        printed += &text(&out);
    }
    assert!(printed.contains("about to fail with ***"), "the log shows the failure, redacted: {printed}");
    assert!(!printed.contains(TOKEN), "printed: {printed}");

    // Every file nixl wrote: state and its backup, scripts, results, logs.
    let files = files_nixl_writes(&dir.join(".nixl"));
    assert!(files.iter().any(|f| f.ends_with("state.json.backup")), "{files:?}");
    assert!(files.iter().any(|f| f.to_string_lossy().contains("/objects/scripts/")), "scripts are kept: {files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(TOKEN), "{} holds the secret", f.display());
    }

    // The step's hash is not the value's: another value plans nothing new.
    let out =
        nixl_in(&dir, &["plan", "local-demo.nixl", "--detailed-exitcode", "--target", "setup.node1.03-token"], Some("another"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let _ = nixl_in(&dir, &["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"], None);
}

/// The local provider reads no SSM parameter: `secret("ssm:...")` there is E0503 at the secret,
/// saying to use `env:`, before anything is created.
#[test]
fn an_ssm_secret_on_the_local_provider_is_named_before_anything_is_created() {
    let dir = demo_with_a_secret("secret-local-ssm");
    let file = dir.join("local-demo.nixl");
    let source =
        std::fs::read_to_string(&file).unwrap().replace("secret(\"env:NIXL_TEST_TOKEN\")", "secret(\"ssm:/team/hf-token\")");
    std::fs::write(&file, source).unwrap();
    let apply = ["apply", "local-demo.nixl", "--provider", "local", "--auto-approve", "--target", "setup.node1.03-token"];
    let out = nixl_in(&dir, &apply, Some(TOKEN));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("error[nixl::E0503]") && t.contains("secret(\"ssm:/team/hf-token\")"), "{t}");
    assert!(t.contains("the local provider reads no SSM parameters"), "{t}");
    assert!(!dir.join(".nixl/demo/local").exists(), "something was created");
}
