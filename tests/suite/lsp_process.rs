//! `nixl lsp` as editors run it: the built binary as a child process, spoken to
//! over its stdin and stdout by a small LSP client, so the real stdio transport
//! is what is tested (bursts written in one go, memory read from /proc, exit
//! codes, malformed frames).

use crate::support::{root, scratch};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

struct Proc {
    child: Child,
    stdin: ChildStdin,
    from_server: Receiver<Value>,
    next: i64,
}

fn frame(v: &Value) -> Vec<u8> {
    let body = v.to_string();
    format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

impl Proc {
    fn start() -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nixl"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nixl lsp");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(n) = l.strip_prefix("Content-Length: ") {
                        len = n.parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                    return;
                }
            }
        });
        let mut p = Proc { child, stdin, from_server: rx, next: 1 };
        let caps = p.request("initialize", json!({ "capabilities": {}, "processId": null, "rootUri": null }));
        assert!(caps["capabilities"].is_object(), "{caps}");
        p.notify("initialized", json!({}));
        p
    }

    fn write(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.write(&frame(&json!({ "jsonrpc": "2.0", "method": method, "params": params })));
    }

    fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next;
        self.next += 1;
        self.write(&frame(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })));
        id
    }

    /// The response to request `id`, skipping notifications.
    fn response(&mut self, id: i64) -> Value {
        loop {
            let m = self.from_server.recv_timeout(Duration::from_secs(60)).expect("the server answers");
            if m["id"] == json!(id) && m.get("method").is_none() {
                return m;
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        let r = self.response(id);
        assert!(r.get("error").is_none(), "{method}: {r}");
        r["result"].clone()
    }

    /// Every message until the server has been silent for `quiet`.
    fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut out = vec![];
        loop {
            match self.from_server.recv_timeout(quiet) {
                Ok(m) => out.push(m),
                Err(RecvTimeoutError::Timeout) => return out,
                Err(RecvTimeoutError::Disconnected) => return out,
            }
        }
    }

    fn next_publish(&mut self) -> Value {
        loop {
            let m = self.from_server.recv_timeout(Duration::from_secs(60)).expect("diagnostics");
            if m["method"] == "textDocument/publishDiagnostics" {
                return m["params"].clone();
            }
        }
    }

    /// The peak resident set of the server (VmHWM), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("VmHWM");
        kb * 1024
    }

    fn wait(mut self) -> i32 {
        drop(self.stdin);
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("nixl lsp did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// About 5,000 lines, nearly all of them in one `setup` block.
fn one_big_block() -> String {
    let mut s = String::from("import \"std/aws\"\n\nsetup big {\n  let version = \"0.1\"\n");
    let mut j = 0;
    while s.lines().count() < 4_990 {
        s += &format!(
            "  step \"{j:04}-install\" {{\n    name    = \"install {j}\"\n    run     = \"pip install pkg{j}=={{version}}\"\n    timeout = 10min\n  }}\n"
        );
        j += 1;
    }
    s + "}\n"
}

fn change(uri: &str, version: i32, line: usize, col: usize, text: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": "textDocument/didChange",
        "params": {
            "textDocument": { "uri": uri, "version": version },
            "contentChanges": [{ "range": {
                "start": { "line": line, "character": col }, "end": { "line": line, "character": col } }, "text": text }]
        }
    })
}

/// The line and column just inside the closing quote of the middle step's `name`.
fn typing_spot(text: &str) -> (usize, usize) {
    let names: Vec<(usize, &str)> = text.lines().enumerate().filter(|(_, l)| l.contains("name    = \"install")).collect();
    let (line, l) = names[names.len() / 2];
    (line, l.rfind('"').unwrap())
}

/// `nixl lsp` started with the 5,000-line block open: the server, the document's uri and
/// text, and the first diagnostics it published.
fn open_big_block(name: &str) -> (Proc, String, String, Value) {
    let path = scratch(name).join("big.nixl");
    let text = one_big_block();
    std::fs::write(&path, &text).unwrap();
    let uri = lsp_types::Url::from_file_path(&path).unwrap().to_string();
    let mut p = Proc::start();
    p.notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": "nixl", "version": 1, "text": text } }));
    let first = p.next_publish();
    (p, uri, text, first)
}

#[test]
fn lsp_process_coalesces_a_burst_of_changes_written_at_once() {
    let (mut p, uri, text, first) = open_big_block("lsp-burst");
    assert_eq!(first["diagnostics"], json!([]), "{first}");
    // 50 keystrokes in one write, as a fast typist or a paste arrives.
    let (line, col) = typing_spot(&text);
    let burst: Vec<u8> = (0..50).flat_map(|i| frame(&change(&uri, 2 + i, line, col + i as usize, "x"))).collect();
    p.write(&burst);
    let publishes: Vec<Value> =
        p.drain(Duration::from_secs(3)).into_iter().filter(|m| m["method"] == "textDocument/publishDiagnostics").collect();
    assert!(!publishes.is_empty() && publishes.len() <= 2, "{} publishes for one burst", publishes.len());
    eprintln!("50 changes in one write: {} publish(es)", publishes.len());
    assert_eq!(publishes.last().unwrap()["params"]["version"], 51, "the last publish is for the last change");
    let id = p.send_request("shutdown", Value::Null);
    p.response(id);
    p.notify("exit", Value::Null);
    assert_eq!(p.wait(), 0);
}

#[test]
fn lsp_process_memory_stays_flat_under_3000_keystrokes_in_a_5000_line_block() {
    let (mut p, uri, text, _) = open_big_block("lsp-rss");
    let (line, col) = typing_spot(&text);
    let mut checks = 0;
    for i in 0..3_000 {
        p.write(&frame(&change(&uri, 2 + i, line, col + i as usize, "y")));
        // Every 10th keystroke a request: the server re-checks before answering, as
        // when an editor asks for hover or completion while the user types.
        if i % 10 == 9 {
            let sym = p.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": uri } }));
            assert!(sym.is_array(), "{sym}");
            checks += 1;
        }
    }
    let rss = p.peak_rss();
    assert_eq!(checks, 300);
    assert!(rss < 150 * 1024 * 1024, "peak RSS {} MB", rss / (1024 * 1024));
    eprintln!("peak RSS after 3,000 keystrokes: {} MB", rss / (1024 * 1024));
    let id = p.send_request("shutdown", Value::Null);
    p.response(id);
    p.notify("exit", Value::Null);
    assert_eq!(p.wait(), 0);
}

#[test]
fn lsp_process_answers_protocol_errors_and_exits_with_the_spec_codes() {
    let mut p = Proc::start();
    // A frame that is not JSON, then one that is JSON but no message: both answered, the server lives.
    p.write(b"Content-Length: 9\r\n\r\n{not json");
    p.write(&frame(&json!({ "jsonrpc": "2.0", "id": 99, "params": {} })));
    let replies = p.drain(Duration::from_millis(500));
    assert!(replies.iter().any(|r| r["error"]["code"] == -32700 && r["id"].is_null()), "{replies:?}");
    assert!(replies.iter().any(|r| r["error"]["code"] == -32600 && r["id"] == 99), "{replies:?}");
    // An unknown method is answered with an error, never fatal.
    let id = p.send_request("nixl/unknown", json!({}));
    assert_eq!(p.response(id)["error"]["code"], -32601);
    // After shutdown, requests are refused but answered; exit then ends with 0.
    let id = p.send_request("shutdown", Value::Null);
    assert!(p.response(id).get("error").is_none());
    let id = p.send_request("textDocument/hover", json!({}));
    assert_eq!(p.response(id)["error"]["code"], -32600);
    p.notify("exit", Value::Null);
    assert_eq!(p.wait(), 0, "exit after shutdown");

    // `exit` without `shutdown`: exit code 1.
    let mut p = Proc::start();
    p.notify("exit", Value::Null);
    assert_eq!(p.wait(), 1, "exit without shutdown");
}

#[test]
fn lsp_process_rule_with_a_misspelt_metric_fails_nixl_check() {
    let dir = scratch("lsp-rule-check");
    let text = std::fs::read_to_string(root().join("examples/phase2.nixl")).unwrap();
    let bad = text.replacen("mean(tpot, layer = \"L1-Unified\")", "mean(tpott, layer = \"L1-Unified\")", 1);
    assert_ne!(bad, text);
    for f in ["phase1.nixl", "setup.nixl", "low-level.nixl"] {
        let _ = std::fs::copy(root().join("examples").join(f), dir.join(f));
    }
    std::fs::write(dir.join("phase2.nixl"), &bad).unwrap();
    let out = crate::support::nixl().args(["check"]).arg(dir.join("phase2.nixl")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("E0208") && stderr.contains("no metric named `tpott`"), "{stderr}");
    assert!(stderr.contains("did you mean `tpot`?"), "{stderr}");
    // File names print as given, never `//tmp/...`.
    assert!(!stderr.contains("//"), "{stderr}");
}

/// Headless Neovim on phase2.nixl (phase1.nixl beside it): an inlay hint with a
/// layer's pattern count, a factor renamed across both files (saved, and the
/// result still checks), and a completion accepted inside `"p2-ll-fi-` that
/// leaves exactly one id in the string.
#[test]
fn lsp_process_neovim_renames_across_files_hints_and_completes_inside_strings() {
    if std::process::Command::new("nvim").arg("--version").output().is_err() {
        assert_eq!(std::env::var("NIXL_SKIP_EDITOR_TESTS").as_deref(), Ok("1"), "nvim is needed: apt-get install -y neovim");
        return;
    }
    let dir = scratch("lsp-nvim-phase2");
    for f in ["setup.nixl", "low-level.nixl"] {
        let _ = std::fs::copy(root().join("examples").join(f), dir.join(f));
    }
    let p1 = std::fs::read_to_string(root().join("examples/phase1.nixl")).unwrap();
    // A `let` reads the factor, so it reaches something under either name (E0602).
    let p1 =
        p1.replacen("  factor concurrency", "  factor seed        = [7]\n  let seed_read      = seed\n  factor concurrency", 1);
    std::fs::write(dir.join("phase1.nixl"), &p1).unwrap();
    let p2 = std::fs::read_to_string(root().join("examples/phase2.nixl")).unwrap();
    let p2 = p2.replacen("  hand_estimate = 620min\n", "  hand_estimate = 620min\n  let seed2     = seed + 1\n", 1);
    // Design points name every factor in order: (prompt, seed, concurrency).
    let p2: String = p2
        .lines()
        .map(|l| if l.contains("design = points(") { l.replace("K, ", "K, 7, ") } else { l.to_string() } + "\n")
        .collect();
    let file = dir.join("phase2.nixl");
    std::fs::write(&file, &p2).unwrap();
    let check = |what: &str| {
        let out = crate::support::nixl().arg("check").arg(&file).output().unwrap();
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    };
    check("before");
    let line_col = |text: &str, needle: &str| {
        let off = text.find(needle).unwrap_or_else(|| panic!("{needle}"));
        let before = &text[..off];
        (before.matches('\n').count(), off - before.rfind('\n').map_or(0, |i| i + 1))
    };
    let (rename_line, rename_col) = line_col(&p2, "seed + 1");
    let (schedule_line, _) = line_col(&p2, "    schedule = [");
    let result = dir.join("result.json");
    let mut cmd = Command::new("nvim");
    cmd.current_dir(&dir)
        .args(["--headless", "--clean", "-n"])
        .arg(&file)
        .arg("-c")
        .arg(format!("luafile {}", root().join("tests/editors/nvim_e2e.lua").display()))
        .env("NIXL_SCENARIO", "phase2")
        .env("NIXL_BIN", env!("CARGO_BIN_EXE_nixl"))
        .env("NIXL_RESULT", &result)
        .env("NIXL_RENAME_LINE", rename_line.to_string())
        .env("NIXL_RENAME_COL", (rename_col + 1).to_string())
        .env("NIXL_RENAME_TO", "rng_seed")
        .env("NIXL_TYPE_LINE", (schedule_line + 1).to_string())
        .env("NIXL_TYPE_TEXT", "      \"p2-ll-fi-\",")
        .env("NIXL_WANT", "p2-ll-fi-pingpong-1mb")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("nvim took more than 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let raw = std::fs::read_to_string(&result).expect("nvim wrote its result");
    let r: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(r["ok"], true, "{raw}");

    // The inlay hint on L1-Unified's opening line: its pattern count.
    let (l1_line, _) = line_col(&p2, "layer \"L1-Unified\"");
    let hint = r["hints"].as_array().unwrap().iter().find(|h| h["line"] == l1_line).unwrap_or_else(|| panic!("{raw}"));
    assert!(hint["label"].as_str().unwrap_or("").starts_with("9 patterns"), "{raw}");

    // The rename edited both files, was saved, and the result checks cleanly.
    assert_eq!(r["rename_files"]["phase1.nixl"], 2, "{raw}"); // the factor and the `let` reading it
    assert_eq!(r["rename_files"]["phase2.nixl"], 1, "{raw}");
    assert!(std::fs::read_to_string(dir.join("phase1.nixl")).unwrap().contains("factor rng_seed"));
    assert!(std::fs::read_to_string(&file).unwrap().contains("rng_seed + 1"));
    check("after the rename");

    // Completion inside the string: only the layer's own low-level ids, all with the typed prefix
    // among them, and accepting one leaves exactly that id.
    let offered: Vec<&str> = r["offered"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(offered.iter().all(|id| id.starts_with("p2-ll-")), "{offered:?}");
    assert!(offered.contains(&"p2-ll-fi-pingpong-1mb"), "{offered:?}");
    assert_eq!(r["accepted_line"], "      \"p2-ll-fi-pingpong-1mb\",", "{raw}");
}

/// An imported file with a misspelt zone: the importer's `import` line says so,
/// but offers no quick fix (the fix would replace the import path with a zone).
#[test]
fn lsp_process_import_line_diagnostic_offers_no_quick_fix() {
    let dir = scratch("lsp-import-fix");
    for f in ["setup.nixl", "low-level.nixl", "phase2.nixl"] {
        let _ = std::fs::copy(root().join("examples").join(f), dir.join(f));
    }
    let p1 = std::fs::read_to_string(root().join("examples/phase1.nixl")).unwrap();
    let bad = p1.replacen("\"us-east-1b\"", "\"us-east-1x\"", 1);
    assert_ne!(bad, p1);
    std::fs::write(dir.join("phase1.nixl"), &bad).unwrap();
    let path = dir.join("phase2.nixl");
    let text = std::fs::read_to_string(&path).unwrap();
    let uri = lsp_types::Url::from_file_path(&path).unwrap().to_string();
    let mut p = Proc::start();
    p.notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": "nixl", "version": 1, "text": text } }));
    let published = p.next_publish();
    let diags = published["diagnostics"].as_array().unwrap().clone();
    let import_line = text.lines().position(|l| l.starts_with("import \"./phase1.nixl\"")).unwrap();
    let on_import: Vec<&Value> = diags.iter().filter(|d| d["range"]["start"]["line"] == import_line).collect();
    assert_eq!(on_import.len(), 1, "{diags:?}");
    assert!(on_import[0]["message"].as_str().unwrap().contains("us-east-1x"), "{diags:?}");
    assert!(on_import[0].get("data").is_none_or(Value::is_null), "{diags:?}");
    let actions = p.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri }, "range": on_import[0]["range"], "context": { "diagnostics": [on_import[0]] } }),
    );
    assert_eq!(actions, json!([]), "no edit on the import line");
    let id = p.send_request("shutdown", Value::Null);
    p.response(id);
    p.notify("exit", Value::Null);
    assert_eq!(p.wait(), 0);
}

/// The VS Code extension packaged as VS Code installs it: `vsce package` (from
/// editors/vscode/test's dev dependencies) builds a `.vsix` holding the manifest
/// with the client setting, the grammar, the language configuration and the
/// language client.
#[test]
fn lsp_process_vscode_extension_packages_as_a_vsix() {
    let vsce = root().join("editors/vscode/test/node_modules/@vscode/vsce/vsce");
    if !vsce.exists() {
        assert_eq!(
            std::env::var("NIXL_SKIP_EDITOR_TESTS").as_deref(),
            Ok("1"),
            "run `(cd editors/vscode/test && npm ci)` (.ci/run does), or set NIXL_SKIP_EDITOR_TESTS=1"
        );
        return;
    }
    let ext = root().join("editors/vscode");
    if !ext.join("node_modules/vscode-languageclient").is_dir() {
        let out = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&ext).output().expect("npm");
        assert!(out.status.success(), "npm ci: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out_file = scratch("vsix").join("nixl.vsix");
    let out = Command::new("node").arg(&vsce).args(["package", "--out"]).arg(&out_file).current_dir(&ext).output().expect("node");
    assert!(out.status.success(), "vsce: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let list = Command::new("unzip").arg("-l").arg(&out_file).output().expect("unzip");
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    for f in [
        "extension/package.json",
        "extension/extension.js",
        "extension/syntaxes/nixl.tmLanguage.json",
        "extension/language-configuration.json",
        "extension/node_modules/vscode-languageclient/package.json",
    ] {
        assert!(list.contains(f), "{f} missing from the vsix:\n{list}");
    }
    assert!(!list.contains("extension/test/"), "the grammar test is not shipped");
    let manifest = Command::new("unzip").arg("-p").arg(&out_file).arg("extension/package.json").output().unwrap();
    let manifest: Value = serde_json::from_slice(&manifest.stdout).unwrap();
    assert_eq!(manifest["contributes"]["configuration"]["properties"]["nixl.server.path"]["default"], "nixl");
    assert_eq!(manifest["contributes"]["grammars"][0]["scopeName"], "source.nixl");
}

/// `import "./ph` completes from the file system, and the item replaces the whole
/// string content (no `./ph./phase1.nixl`); a schedule list offers its layer's ids only.
#[test]
fn lsp_process_completion_edits_cover_the_string_and_import_paths_come_from_disk() {
    let dir = scratch("lsp-import-complete");
    for f in ["phase1.nixl", "setup.nixl", "low-level.nixl"] {
        let _ = std::fs::copy(root().join("examples").join(f), dir.join(f));
    }
    std::fs::create_dir_all(dir.join("more")).unwrap();
    let path = dir.join("new.nixl");
    let text = "import \"./ph\"\n";
    std::fs::write(&path, text).unwrap();
    let uri = lsp_types::Url::from_file_path(&path).unwrap().to_string();
    let mut p = Proc::start();
    p.notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": "nixl", "version": 1, "text": text } }));
    p.next_publish();
    let items = p.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 12 } }),
    );
    let items = items.as_array().unwrap();
    let labels: Vec<&str> = items.iter().filter_map(|i| i["label"].as_str()).collect();
    assert!(labels.contains(&"./phase1.nixl") && labels.contains(&"./more/"), "{labels:?}");
    assert!(!labels.iter().any(|l| l.starts_with("std/")), "a relative path was typed: {labels:?}");
    let item = items.iter().find(|i| i["label"] == "./phase1.nixl").unwrap();
    assert_eq!(item["textEdit"]["newText"], "./phase1.nixl");
    assert_eq!(item["textEdit"]["range"]["start"], json!({ "line": 0, "character": 8 }));
    assert_eq!(item["textEdit"]["range"]["end"], json!({ "line": 0, "character": 12 }));
    let id = p.send_request("shutdown", Value::Null);
    p.response(id);
    p.notify("exit", Value::Null);
    assert_eq!(p.wait(), 0);
}
