//! `nixl lsp`: in-process tests over lsp-server's memory connection, one
//! end-to-end test with a real editor (headless Neovim driving the built
//! binary), and the TextMate grammar tokenised by vscode-textmate.

use crate::support::{root, scratch};
use lsp_server::{Connection, Message, Notification, Request, RequestId};
use lsp_types::Url;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// A scripted LSP client on the other end of an in-memory connection.
struct Client {
    conn: Connection,
    server: Option<std::thread::JoinHandle<()>>,
    next: i32,
    /// Notifications received while waiting for something else.
    pending: Vec<Notification>,
}

impl Client {
    fn start() -> Client {
        let (server, client) = Connection::memory();
        let handle = std::thread::spawn(move || nixl::lsp::serve(server).expect("server loop"));
        let mut c = Client { conn: client, server: Some(handle), next: 1, pending: vec![] };
        let caps = c.request("initialize", json!({ "capabilities": {}, "processId": null, "rootUri": null }));
        assert_eq!(caps["capabilities"]["textDocumentSync"]["change"], 2, "incremental sync: {caps}");
        c.notify("initialized", json!({}));
        c
    }

    fn notify(&self, method: &str, params: Value) {
        self.conn.sender.send(Message::Notification(Notification::new(method.into(), params))).unwrap();
    }

    fn recv(&self) -> Message {
        self.conn.receiver.recv_timeout(Duration::from_secs(20)).expect("the server answers within 20 s")
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.conn.sender.send(Message::Request(Request::new(RequestId::from(id), method.into(), params))).unwrap();
        loop {
            match self.recv() {
                Message::Response(r) if r.id == RequestId::from(id) => {
                    assert!(r.error.is_none(), "{method} failed: {:?}", r.error);
                    return r.result.unwrap_or(Value::Null);
                }
                Message::Notification(n) => self.pending.push(n),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &Url) -> Vec<Value> {
        let matches = |n: &Notification| n.method == "textDocument/publishDiagnostics" && n.params["uri"] == uri.as_str();
        if let Some(i) = self.pending.iter().position(matches) {
            let n = self.pending.remove(i);
            return n.params["diagnostics"].as_array().unwrap().clone();
        }
        loop {
            match self.recv() {
                Message::Notification(n) if matches(&n) => return n.params["diagnostics"].as_array().unwrap().clone(),
                Message::Notification(n) => self.pending.push(n),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn open(&mut self, uri: &Url, text: &str) -> Vec<Value> {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "nixl", "version": 1, "text": text } }),
        );
        self.diagnostics(uri)
    }

    /// Replaces `old` (its first occurrence) by `new` with one incremental change.
    fn edit(&mut self, uri: &Url, text: &mut String, old: &str, new: &str, version: i32) {
        let start = text.find(old).expect("text to edit");
        let (a, b) = (pos(text, start), pos(text, start + old.len()));
        self.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": uri, "version": version },
                "contentChanges": [{ "range": { "start": a, "end": b }, "text": new }]
            }),
        );
        text.replace_range(start..start + old.len(), new);
    }

    fn at(&mut self, method: &str, uri: &Url, text: &str, needle: &str, extra: Value) -> Value {
        let off = text.find(needle).unwrap_or_else(|| panic!("`{needle}` in the document")) + 1;
        let mut params = json!({ "textDocument": { "uri": uri }, "position": pos(text, off) });
        if let (Value::Object(p), Value::Object(e)) = (&mut params, extra) {
            p.extend(e);
        }
        self.request(method, params)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let _ = self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        if let Some(h) = self.server.take() {
            h.join().expect("the server thread ends cleanly");
        }
    }
}

/// LSP position of a byte offset (the test texts are ASCII).
fn pos(text: &str, offset: usize) -> Value {
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let col = offset - before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    json!({ "line": line, "character": col })
}

fn uri(path: &Path) -> Url {
    Url::from_file_path(path).unwrap()
}

fn codes(diags: &[Value]) -> Vec<String> {
    diags.iter().map(|d| d["code"].as_str().unwrap_or("").to_string()).collect()
}

/// The quickstart example with its second zone moved to another region.
fn quickstart_with_bad_zone() -> String {
    let text = std::fs::read_to_string(root().join("examples/quickstart.nixl")).unwrap();
    assert!(text.contains("\"us-east-1b\""));
    text.replacen("\"us-east-1b\"", "\"us-west-2b\"", 1)
}

#[test]
fn lsp_diagnostics_follow_edits_and_clear_when_fixed() {
    let dir = scratch("lsp-diag");
    let u = uri(&dir.join("quick.nixl"));
    let mut text = quickstart_with_bad_zone();
    let mut c = Client::start();
    let diags = c.open(&u, &text);
    assert_eq!(codes(&diags), ["nixl::E0207"], "{diags:?}");
    let start = text.find("\"us-west-2b\"").unwrap();
    assert_eq!(diags[0]["range"]["start"], pos(&text, start));
    assert_eq!(diags[0]["range"]["end"], pos(&text, start + "\"us-west-2b\"".len()));
    assert_eq!(diags[0]["severity"], 1);
    assert!(diags[0]["message"].as_str().unwrap().contains("us-west-2b"), "{diags:?}");

    // The quick fix from "did you mean": the zone of the stack's region, quoted.
    let actions = c.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": &u }, "range": diags[0]["range"], "context": { "diagnostics": diags } }),
    );
    let edit = &actions[0]["edit"]["changes"][u.as_str()][0];
    assert_eq!(edit["newText"], "\"us-east-1b\"", "{actions}");
    assert_eq!(edit["range"], diags[0]["range"]);
    assert_eq!(actions[0]["kind"], "quickfix");

    c.edit(&u, &mut text, "us-west-2b", "us-east-1b", 2);
    assert_eq!(c.diagnostics(&u), Vec::<Value>::new());

    // A misspelt factor in a pattern's id: code, range and the help text.
    c.edit(&u, &mut text, "-c{concurrency}\"\n  }\n}", "-c{concurency}\"\n  }\n}", 3);
    let diags = c.diagnostics(&u);
    assert_eq!(codes(&diags), ["nixl::E0103"], "{diags:?}");
    assert!(diags[0]["message"].as_str().unwrap().contains("did you mean `concurrency`?"), "{diags:?}");

    // A prune that removes every pattern.
    c.edit(&u, &mut text, "restart_on", "prune concurrency > 0 because \"all\"\n  restart_on", 4);
    let diags = c.diagnostics(&u);
    assert!(codes(&diags).contains(&"nixl::E0301".to_string()), "{diags:?}");
}

#[test]
fn lsp_duplicate_has_related_location_and_importers_are_rechecked() {
    let dir = scratch("lsp-import");
    let (a_path, b_path) = (dir.join("a.nixl"), dir.join("b.nixl"));
    std::fs::write(&b_path, "let tp = 4\n").unwrap();
    let a_text = "import \"./b.nixl\"\nlet size = tp * 2\n";
    std::fs::write(&a_path, a_text).unwrap();
    let (a, b) = (uri(&a_path), uri(&b_path));
    let mut c = Client::start();
    assert_eq!(c.open(&a, a_text), Vec::<Value>::new());

    // Renaming `tp` in the (unsaved) imported buffer breaks the importer.
    let mut b_text = "let tp = 4\n".to_string();
    assert_eq!(c.open(&b, &b_text), Vec::<Value>::new());
    assert_eq!(c.diagnostics(&a), Vec::<Value>::new(), "opening an imported file re-checks its importers");
    c.edit(&b, &mut b_text, "tp", "tensor_parallel", 2);
    let mut got = vec![c.diagnostics(&b), c.diagnostics(&a)];
    assert_eq!(got[0], Vec::<Value>::new());
    let a_diags = got.remove(1);
    assert_eq!(codes(&a_diags), ["nixl::E0103"], "{a_diags:?}");

    // A duplicate: both places, the first as related information in the other file.
    c.edit(&b, &mut b_text, "tensor_parallel", "tp", 3);
    c.diagnostics(&b);
    assert_eq!(c.diagnostics(&a), Vec::<Value>::new());
    let mut a_text = a_text.to_string();
    c.edit(&a, &mut a_text, "let size", "let tp = 8\nlet size", 2);
    let diags = c.diagnostics(&a);
    assert_eq!(codes(&diags), ["nixl::E0104"], "{diags:?}");
    let related = &diags[0]["relatedInformation"][0];
    assert_eq!(related["location"]["uri"], b.as_str());
    assert_eq!(related["location"]["range"]["start"], json!({ "line": 0, "character": 4 }));
    assert_eq!(related["message"], "first defined here");

    // Both places in one file: the error on the second, a hint on the first pointing back.
    let u = uri(&dir.join("dup.nixl"));
    let diags = c.open(&u, "let tp = 4\nlet tp = 8\n");
    assert_eq!(codes(&diags), ["nixl::E0104", "nixl::E0104"], "{diags:?}");
    assert_eq!((diags[0]["severity"].as_u64(), diags[0]["range"]["start"]["line"].as_u64()), (Some(1), Some(1)));
    assert_eq!((diags[1]["severity"].as_u64(), diags[1]["range"]["start"]["line"].as_u64()), (Some(4), Some(0)));
    assert_eq!(diags[1]["relatedInformation"][0]["location"]["range"]["start"], json!({ "line": 1, "character": 4 }));
}

#[test]
fn lsp_saving_or_closing_an_imported_file_rechecks_its_importers() {
    let dir = scratch("lsp-save");
    let (a_path, c_path) = (dir.join("a.nixl"), dir.join("c.nixl"));
    std::fs::write(&c_path, "let k = 1\n").unwrap();
    let a_text = "import \"./c.nixl\"\nlet j = k + 1\n";
    let (a, cu) = (uri(&a_path), uri(&c_path));
    let mut c = Client::start();
    assert_eq!(c.open(&a, a_text), Vec::<Value>::new());
    // Saved by another program (or editor): the importer is re-checked from the disk.
    std::fs::write(&c_path, "let kk = 1\n").unwrap();
    c.notify("textDocument/didSave", json!({ "textDocument": { "uri": &cu } }));
    assert_eq!(codes(&c.diagnostics(&a)), ["nixl::E0103"]);
    // An open buffer wins over the disk until it is closed.
    c.open(&cu, "let k = 1\n");
    assert_eq!(c.diagnostics(&a), Vec::<Value>::new());
    c.notify("textDocument/didClose", json!({ "textDocument": { "uri": &cu } }));
    assert_eq!(c.diagnostics(&cu), Vec::<Value>::new(), "a closed file's diagnostics are cleared");
    assert_eq!(codes(&c.diagnostics(&a)), ["nixl::E0103"]);
    // An import error in the imported file is flagged on the import line.
    std::fs::write(&c_path, "let k = = 1\n").unwrap();
    c.notify("textDocument/didSave", json!({ "textDocument": { "uri": &cu } }));
    let d = c.diagnostics(&a);
    assert!(d.iter().any(|d| d["range"]["start"]["line"] == 0 && d["message"].as_str().unwrap().contains("c.nixl")), "{d:?}");
}

#[test]
fn lsp_hover_shows_levels_catalogue_kv_sizes_and_patterns() {
    let dir = scratch("lsp-hover");
    let u = uri(&dir.join("p1.nixl"));
    let text = std::fs::read_to_string(root().join("examples/quickstart.nixl")).unwrap();
    let mut c = Client::start();
    assert_eq!(c.open(&u, &text), Vec::<Value>::new());
    let hover = |c: &mut Client, needle: &str| -> String {
        let h = c.at("textDocument/hover", &u, &text, needle, json!({}));
        h["contents"]["value"].as_str().unwrap_or_else(|| panic!("hover on `{needle}`: {h}")).to_string()
    };
    let h = hover(&mut c, "prompt      =");
    assert!(h.contains("factor") && h.contains("2 levels") && h.contains("1K, 12K"), "{h}");
    let h = hover(&mut c, "g6e.12xlarge");
    assert!(h.contains("4 x NVIDIA L40S") && h.contains("/h"), "{h}");
    let h = hover(&mut c, "12K]");
    assert!(
        h.contains("`12K` = 12288 tokens")
            && h.contains("KV cache of a 12K-token prompt on `qwen2_5_7b`: 672.0 MiB (168.0 MiB per GPU at TP=4)"),
        "{h}"
    );
    let h = hover(&mut c, "\"efa\" {");
    assert!(h.contains("**layer** `efa`") && h.contains("4 patterns"), "{h}");
    let h = hover(&mut c, "duration   =");
    assert!(h.contains("`3min` = 3m (180 s)"), "{h}");
    let h = hover(&mut c, "qwen2_5_7b");
    assert!(h.contains("**model**") && h.contains("per token"), "{h}");
    // A pattern setting: its values across the patterns.
    let p1 = std::fs::read_to_string(root().join("examples/phase1.nixl")).unwrap();
    let u1 = uri(&root().join("examples/phase1.nixl"));
    assert_eq!(c.open(&u1, &p1), Vec::<Value>::new());
    let h = c.at("textDocument/hover", &u1, &p1, "max_model_len  =", json!({}));
    let h = h["contents"]["value"].as_str().unwrap().to_string();
    assert!(h.contains("**set** `max_model_len`") && h.contains("`long ? 133120 : 34816`: evaluated per pattern"), "{h}");
    assert!(h.contains("across patterns: `34816` (48), `133120` (25)"), "{h}");
    let h = c.at("textDocument/hover", &u1, &p1, "volume        =", json!({}));
    assert!(h["contents"]["value"].as_str().unwrap().contains("`200GB` = 200000000000 bytes (186.3 GiB)"), "{h}");
    // A pattern id in a schedule: its full settings, as `nixl show` prints them.
    let mut text2 = text.clone();
    text2 = text2.replacen("mode = unified\n", "mode = unified\n    schedule = [\"qs-unified-1k-c1\"]\n", 1);
    let u2 = uri(&dir.join("p2.nixl"));
    assert_eq!(c.open(&u2, &text2), Vec::<Value>::new());
    let h = c.at("textDocument/hover", &u2, &text2, "qs-unified-1k-c1\"]", json!({}));
    let h = h["contents"]["value"].as_str().unwrap().to_string();
    assert!(h.contains("pattern qs-unified-1k-c1") && h.contains("settings:") && h.contains("concurrency"), "{h}");
}

#[test]
fn lsp_completion_offers_schema_names_catalogue_and_factors() {
    let dir = scratch("lsp-complete");
    let u = uri(&dir.join("q.nixl"));
    let text = std::fs::read_to_string(root().join("examples/quickstart.nixl")).unwrap();
    let mut c = Client::start();
    c.open(&u, &text);
    let labels =
        |v: &Value| -> Vec<String> { v.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap().to_string()).collect() };
    let complete = |c: &mut Client, off: usize| {
        labels(&c.request("textDocument/completion", json!({ "textDocument": { "uri": &u }, "position": pos(&text, off) })))
    };
    // Inside the stack, at the start of a line: its attributes and child blocks.
    let off = text.find("  instance_type").unwrap();
    let got = complete(&mut c, off);
    for want in ["placement", "ami_parameter", "node", "bucket"] {
        assert!(got.contains(&want.to_string()), "{want} in {got:?}");
    }
    assert!(!got.contains(&"factor".to_string()), "{got:?}");
    // In the zones list: the region's zones; in instance_type: the catalogue.
    let got = complete(&mut c, text.find("us-east-1b").unwrap());
    assert!(got.contains(&"us-east-1c".to_string()) && !got.contains(&"us-west-2a".to_string()), "{got:?}");
    let got = complete(&mut c, text.find("g6e.12xlarge").unwrap());
    assert!(got.contains(&"p5.48xlarge".to_string()), "{got:?}");
    // In a layer id template's value position: factors; after `mode =`: the modes.
    let got = complete(&mut c, text.find("unified\n    id").unwrap());
    assert!(got.contains(&"disaggregated".to_string()), "{got:?}");
    let got = complete(&mut c, text.find("mode == unified").unwrap());
    assert!(got.contains(&"prompt".to_string()) && got.contains(&"concurrency".to_string()), "{got:?}");
    // In an experiment: its statements and blocks; at the top level: block kinds; imports.
    let got = complete(&mut c, text.find("  factor prompt").unwrap());
    for want in ["factor", "prune", "layer", "pattern", "restart_on"] {
        assert!(got.contains(&want.to_string()), "{want} in {got:?}");
    }
    let got = complete(&mut c, text.find("experiment quickstart").unwrap());
    assert!(got.contains(&"experiment".to_string()) && got.contains(&"import".to_string()), "{got:?}");
    let got = complete(&mut c, text.find("std/aws").unwrap());
    assert!(got.contains(&"std/models".to_string()), "{got:?}");
    // Overrides of a server definition: its settings.
    let got = complete(&mut c, text.find("tp = 4").unwrap());
    assert!(got.contains(&"tp".to_string()) && got.contains(&"kv_buffer_size".to_string()), "{got:?}");

    // A standard-library model not imported yet: offered with its import.
    let u2 = uri(&dir.join("new.nixl"));
    let t2 = "import \"std/aws\"\n\nexperiment e {\n  model = \n}\n";
    c.open(&u2, t2);
    let items = c.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": &u2 }, "position": pos(t2, t2.find(" \n}").unwrap() + 1) }),
    );
    let qwen = items.as_array().unwrap().iter().find(|i| i["label"] == "qwen2_5_32b").unwrap_or_else(|| panic!("{items}"));
    assert_eq!(qwen["additionalTextEdits"][0]["newText"], "import \"std/models\"\n");
    assert_eq!(qwen["additionalTextEdits"][0]["range"]["start"], json!({ "line": 1, "character": 0 }));
    assert!(items.as_array().unwrap().iter().all(|i| i["label"] != "fi_info"), "only models after `model =`");
}

#[test]
fn lsp_definition_references_symbols_and_formatting() {
    let dir = scratch("lsp-nav");
    let u = uri(&dir.join("q.nixl"));
    let text = std::fs::read_to_string(root().join("examples/quickstart.nixl")).unwrap();
    let mut c = Client::start();
    c.open(&u, &text);
    // A stdlib model: a file the editor can open, at the definition's name.
    let d = c.at("textDocument/definition", &u, &text, "qwen2_5_7b", json!({}));
    let target = d[0]["uri"].as_str().unwrap();
    assert!(target.starts_with("file://") && target.ends_with("/models.nixl"), "{d}");
    let models = std::fs::read_to_string(Url::parse(target).unwrap().to_file_path().unwrap()).unwrap();
    let line = d[0]["range"]["start"]["line"].as_u64().unwrap() as usize;
    assert!(models.lines().nth(line).unwrap().contains("model qwen2_5_7b"), "{d}");
    // A factor: defined in the experiment, used in ids and in `startup`.
    let d = c.at("textDocument/definition", &u, &text, "concurrency}\"\n  }\n  layer", json!({}));
    assert_eq!(d[0]["range"]["start"], pos(&text, text.find("concurrency =").unwrap()));
    let r = c.at("textDocument/references", &u, &text, "concurrency =", json!({ "context": { "includeDeclaration": true } }));
    assert_eq!(r.as_array().unwrap().len(), 3, "{r}");
    // An import: the module.
    let d = c.at("textDocument/definition", &u, &text, "std/vllm", json!({}));
    assert!(d[0]["uri"].as_str().unwrap().ends_with("/vllm.nixl"), "{d}");

    let s = c.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": &u } }));
    let names: Vec<&str> = s.as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["std/aws", "std/models", "std/vllm", "quickstart", "quickstart"]);
    let exp = &s[4]["children"];
    let kids: Vec<&str> = exp.as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(kids, ["prompt", "concurrency", "unified", "efa"]);

    // Formatting: one edit giving `nixl fmt`'s output; none for a formatted file.
    let messy = text.replace("  prefix = \"qs\"", "  prefix=\"qs\"");
    let u2 = uri(&dir.join("messy.nixl"));
    c.open(&u2, &messy);
    let edits = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": &u2 }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    assert_eq!(edits[0]["newText"].as_str().unwrap(), text);
    let none = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": &u }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    assert_eq!(none, json!([]));
}

#[test]
fn lsp_navigation_follows_extends_and_imports() {
    let path = root().join("examples/phase2.nixl");
    let text = std::fs::read_to_string(&path).unwrap();
    let u = uri(&path);
    let mut c = Client::start();
    assert_eq!(c.open(&u, &text), Vec::<Value>::new());
    let line_of = |loc: &Value, file: &str| -> String {
        let p = Url::parse(loc["uri"].as_str().unwrap()).unwrap().to_file_path().unwrap();
        assert!(p.ends_with(file), "{loc}");
        let l = loc["range"]["start"]["line"].as_u64().unwrap() as usize;
        std::fs::read_to_string(p).unwrap().lines().nth(l).unwrap().to_string()
    };
    // A factor of the extended experiment, in the imported file.
    let d = c.at("textDocument/definition", &u, &text, "prompt == 100K", json!({}));
    assert!(line_of(&d[0], "phase1.nixl").contains("factor prompt"), "{d}");
    // A layer named in a rule's argument: this experiment's own `L2-EFA` block.
    let d = c.at("textDocument/definition", &u, &text, "L2-EFA\") - expected", json!({}));
    assert!(line_of(&d[0], "phase2.nixl").contains("layer \"L2-EFA\" {"), "{d}");
    // An analysis of the parent experiment named in `bimodal(...)`.
    let d = c.at("textDocument/definition", &u, &text, "bimodality-detection", json!({}));
    assert!(line_of(&d[0], "phase1.nixl").contains("analysis \"bimodality-detection\""), "{d}");
    // A standard-library tool, two imports away.
    let d = c.at("textDocument/definition", &u, &text, "fi_rdm_bw,", json!({}));
    assert!(line_of(&d[0], "tools.nixl").contains("tool fi_rdm_bw"), "{d}");
    // References of a factor span both files.
    let r = c.at("textDocument/references", &u, &text, "concurrency == 8", json!({ "context": { "includeDeclaration": true } }));
    let files: std::collections::BTreeSet<&str> =
        r.as_array().unwrap().iter().map(|l| l["uri"].as_str().unwrap().rsplit('/').next().unwrap()).collect();
    assert_eq!(files.into_iter().collect::<Vec<_>>(), ["phase1.nixl", "phase2.nixl"], "{r}");
    // Hover on the layer an extra pattern goes in: the layer of the extending experiment.
    let h = c.at("textDocument/hover", &u, &text, "L2-EFA\" {\n    prompt", json!({}));
    assert!(h["contents"]["value"].as_str().unwrap().contains("**layer** `L2-EFA`"), "{h}");
}

#[test]
fn lsp_survives_garbage_documents_and_requests() {
    let dir = scratch("lsp-garbage");
    let mut c = Client::start();
    for (i, text) in
        ["{{{{", "\"", "'''", "experiment", "stack \"s\" { zones = [\"é𝄞", "\u{0}\u{1}x = = =", ""].iter().enumerate()
    {
        let u = uri(&dir.join(format!("g{i}.nixl")));
        let _ = c.open(&u, text);
        for method in ["textDocument/hover", "textDocument/completion", "textDocument/definition"] {
            for (line, ch) in [(0, 0), (0, 3), (5, 99)] {
                c.request(method, json!({ "textDocument": { "uri": &u }, "position": { "line": line, "character": ch } }));
            }
        }
        c.request(
            "textDocument/formatting",
            json!({ "textDocument": { "uri": &u }, "options": { "tabSize": 2, "insertSpaces": true } }),
        );
        c.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": &u } }));
    }
    // A change with an out-of-range edit is clamped; unknown documents and methods get answers.
    let u = uri(&dir.join("g0.nixl"));
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": &u, "version": 9 }, "contentChanges": [{ "range": { "start": { "line": 40, "character": 2 }, "end": { "line": 1, "character": 0 } }, "text": "}}}}" }] }),
    );
    let d = c.diagnostics(&u);
    assert!(codes(&d).iter().all(|c| c.starts_with("nixl::E")), "{d:?}");
    let h = c.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": "file:///nowhere.nixl" }, "position": { "line": 0, "character": 0 } }),
    );
    assert_eq!(h, Value::Null);
    let id = c.next;
    c.next += 1;
    c.conn.sender.send(Message::Request(Request::new(RequestId::from(id), "nixl/unknown".into(), json!({})))).unwrap();
    match c.recv() {
        Message::Response(r) => assert_eq!(r.error.unwrap().code, lsp_server::ErrorCode::MethodNotFound as i32),
        other => panic!("{other:?}"),
    }
}

/// A tool an editor test needs: missing fails the test loudly (CI installs it, see
/// `.ci/run`), unless NIXL_SKIP_EDITOR_TESTS=1 says to skip editor tests on this machine.
fn tool_or_skip(tool: &str, install: &str) -> bool {
    if std::process::Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    if std::env::var("NIXL_SKIP_EDITOR_TESTS").as_deref() == Ok("1") {
        eprintln!("skipping: `{tool}` is missing and NIXL_SKIP_EDITOR_TESTS=1");
        return false;
    }
    panic!("`{tool}` is needed by the editor tests: {install} (or set NIXL_SKIP_EDITOR_TESTS=1 to skip them)");
}

/// Runs a command with a time limit; its output on success.
fn run_with_limit(mut cmd: std::process::Command, limit: Duration) -> std::process::Output {
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("{cmd:?} took more than {limit:?}\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn line_col(text: &str, needle: &str) -> (usize, usize) {
    let off = text.find(needle).unwrap_or_else(|| panic!("`{needle}` in the text"));
    let before = &text[..off];
    (before.matches('\n').count(), off - before.rfind('\n').map(|i| i + 1).unwrap_or(0))
}

#[test]
fn lsp_end_to_end_with_headless_neovim() {
    if !tool_or_skip("nvim", "apt-get install -y neovim") {
        return;
    }
    let dir = scratch("lsp-nvim");
    let file = dir.join("quickstart.nixl");
    let text = quickstart_with_bad_zone();
    std::fs::write(&file, &text).unwrap();
    let result = dir.join("result.json");
    let (bad_line, bad_col) = line_col(&text, "\"us-west-2b\"");
    let (hover_line, hover_col) = line_col(&text, "prompt      =");
    let (complete_line, complete_col) = line_col(&text, "g6e.12xlarge");
    let (def_line, def_col) = line_col(&text, "qwen2_5_7b");
    let mut cmd = std::process::Command::new("nvim");
    cmd.current_dir(&dir)
        .args(["--headless", "--clean", "-n"])
        .arg(&file)
        .arg("-c")
        .arg(format!("luafile {}", root().join("tests/editors/nvim_e2e.lua").display()))
        .env("NIXL_BIN", env!("CARGO_BIN_EXE_nixl"))
        .env("NIXL_RESULT", &result)
        .env("NIXL_FIX_LINE", bad_line.to_string())
        .env("NIXL_FIX_COL", (bad_col + 1).to_string())
        .env("NIXL_FIX_END", (bad_col + 11).to_string())
        .env("NIXL_FIX_TEXT", "us-east-1b")
        .env("NIXL_HOVER_LINE", hover_line.to_string())
        .env("NIXL_HOVER_COL", (hover_col + 2).to_string())
        .env("NIXL_COMPLETE_LINE", complete_line.to_string())
        .env("NIXL_COMPLETE_COL", complete_col.to_string())
        .env("NIXL_DEF_LINE", def_line.to_string())
        .env("NIXL_DEF_COL", (def_col + 3).to_string());
    let out = run_with_limit(cmd, Duration::from_secs(90));
    let raw = std::fs::read_to_string(&result)
        .unwrap_or_else(|_| panic!("nvim wrote no result: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr)));
    let r: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(r["ok"], true, "the Lua script failed: {raw}");

    // The error: the whole string literal of the zone, with its code.
    assert_eq!(r["got_error"], true, "{raw}");
    let d = &r["before"][0];
    assert_eq!(r["before"].as_array().unwrap().len(), 1, "{raw}");
    assert_eq!(d["code"], "nixl::E0207", "{raw}");
    assert_eq!((d["lnum"].as_u64(), d["col"].as_u64()), (Some(bad_line as u64), Some(bad_col as u64)), "{raw}");
    assert_eq!((d["end_lnum"].as_u64(), d["end_col"].as_u64()), (Some(bad_line as u64), Some(bad_col as u64 + 12)), "{raw}");
    assert_eq!(d["severity"], 1, "{raw}");
    // Fixed through an edit, synced incrementally: cleared.
    assert_eq!(r["sync"], 2, "{raw}");
    assert_eq!(r["cleared"], true, "{raw}");
    assert_eq!(r["after"], json!([]), "{raw}");

    let hover = r["hover"]["contents"]["value"].as_str().unwrap_or_else(|| panic!("hover: {raw}"));
    assert!(hover.contains("factor") && hover.contains("1K, 12K"), "{hover}");
    let items: Vec<&str> = r["completion"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(items.contains(&"g6e.24xlarge") && items.contains(&"p5.48xlarge"), "{items:?}");
    let def = &r["definition"][0];
    assert!(def["uri"].as_str().unwrap_or("").ends_with("/models.nixl"), "{raw}");
}

#[test]
fn lsp_textmate_grammar_scopes_an_example() {
    if !tool_or_skip("node", "install Node.js") {
        return;
    }
    let dir = root().join("editors/vscode/test");
    if !dir.join("node_modules/vscode-textmate").is_dir() {
        if std::env::var("NIXL_SKIP_EDITOR_TESTS").as_deref() == Ok("1") {
            return;
        }
        panic!("vscode-textmate is not installed: run `(cd editors/vscode/test && npm ci)` (.ci/run does)");
    }
    let mut cmd = std::process::Command::new("node");
    cmd.current_dir(&dir).arg("grammar.test.js");
    let out = run_with_limit(cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("ok: ") && stdout.contains("scope checks"), "{stdout}");
}

/// The language server's chunked, cached parse must give exactly `syntax::parse`'s tree
/// and diagnostics: on every example, stdlib module and invalid input, and on each
/// example with any one line removed (which breaks many of them).
#[test]
fn lsp_incremental_parse_equals_the_whole_file_parse() {
    let mut files = vec![];
    for dir in ["examples", "stdlib", "tests/golden/invalid"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "nixl") {
                files.push(e.path());
            }
        }
    }
    assert!(files.len() > 60, "{files:?}");
    let cache = nixl::lsp::reparse::ParseCache::default();
    let same = |text: &str, what: &str| {
        let whole = nixl::syntax::parse(3, text);
        let chunked = cache.parse(3, text);
        // Compared as JSON (the tree has no PartialEq); only the name is printed, the trees are large.
        assert!(serde_json::to_value(&chunked.0).unwrap() == serde_json::to_value(&whole.0).unwrap(), "tree of {what} differs");
        assert!(
            serde_json::to_value(&chunked.1).unwrap() == serde_json::to_value(&whole.1).unwrap(),
            "diagnostics of {what} differ"
        );
    };
    let mut checked = 0;
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        same(&text, &f.display().to_string());
        same(&text, &format!("{} (cached)", f.display()));
        checked += 1;
        if f.starts_with(root().join("examples")) {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            for i in 0..lines.len() {
                let cut: String = lines.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, l)| *l).collect();
                same(&cut, &format!("{} without line {}", f.display(), i + 1));
            }
        }
    }
    assert!(checked > 60);
}

#[test]
fn lsp_help_says_what_it_is_for() {
    let out = crate::support::nixl().args(["lsp", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Language Server Protocol") && help.contains("docs/editors.md"), "{help}");
    let out = crate::support::nixl().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("lsp"));
}
