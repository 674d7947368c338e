//! The server loop: a synchronous `lsp-server` connection, one thread.
//!
//! Changes only mark documents dirty; the re-check runs once the client has been
//! quiet for `QUIET` (or before a request that needs it), so a burst of
//! keystrokes costs one check. A changed document also dirties every open
//! document importing it.

use super::analysis::Analysis;
use super::docs::{BufferLoader, Documents};
use super::reparse::ParseCache;
use super::{completion, hover, navigate};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{self as n, Notification as _};
use lsp_types::request::{self as r, Request as _};
use lsp_types::*;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
            open_close: Some(true),
            change: Some(TextDocumentSyncKind::INCREMENTAL),
            save: Some(TextDocumentSyncSaveOptions::Supported(true)),
            ..Default::default()
        })),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec!["\"".into(), "=".into(), "{".into()]),
            ..Default::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        rename_provider: Some(OneOf::Left(true)),
        document_highlight_provider: Some(OneOf::Left(true)),
        inlay_hint_provider: Some(OneOf::Left(true)),
        code_lens_provider: Some(CodeLensOptions { resolve_provider: Some(false) }),
        folding_range_provider: Some(FoldingRangeProviderCapability::Simple(true)),
        workspace_symbol_provider: Some(OneOf::Left(true)),
        semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(SemanticTokensOptions {
            legend: super::outline::legend(),
            full: Some(SemanticTokensFullOptions::Bool(true)),
            range: None,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// After a change, the re-check waits until the client has been quiet this long, so
/// a burst of keystrokes (or a paste arriving as many changes) costs one check.
pub const QUIET: Duration = Duration::from_millis(40);
/// ... but never longer than this after the first unchecked change.
pub const MAX_DELAY: Duration = Duration::from_millis(400);

/// Runs the server on a connection until the client sends `exit`. Exiting without a
/// `shutdown` request first is an error (exit code 1, as the protocol asks).
pub fn serve(conn: Connection) -> Result<(), Error> {
    let (id, client_params) = conn.initialize_start()?;
    let can_watch = client_params["capabilities"]["workspace"]["didChangeWatchedFiles"]["dynamicRegistration"] == true;
    conn.initialize_finish(
        id,
        serde_json::json!({
            "capabilities": capabilities(),
            "serverInfo": { "name": "nixl", "version": env!("CARGO_PKG_VERSION") }
        }),
    )?;
    let mut s = Server {
        conn: &conn,
        docs: Documents::default(),
        analyses: HashMap::new(),
        dirty: BTreeSet::new(),
        cache: ParseCache::default(),
    };
    // Ask to hear about `.nixl` files changed on disk, when the client can tell.
    let watch = Registration {
        id: "nixl-watch".into(),
        method: n::DidChangeWatchedFiles::METHOD.into(),
        register_options: serde_json::to_value(DidChangeWatchedFilesRegistrationOptions {
            watchers: vec![FileSystemWatcher { glob_pattern: GlobPattern::String("**/*.nixl".into()), kind: None }],
        })
        .ok(),
    };
    let register = Request::new(
        lsp_server::RequestId::from("nixl-register-watch".to_string()),
        r::RegisterCapability::METHOD.into(),
        RegistrationParams { registrations: vec![watch] },
    );
    if can_watch {
        conn.sender.send(Message::Request(register))?;
    }
    let mut shutdown = false;
    // When the oldest unchecked change arrived, and the latest.
    let mut pending: Option<(Instant, Instant)> = None;
    loop {
        let msg = match pending {
            None => match conn.receiver.recv() {
                Ok(m) => m,
                Err(_) => break,
            },
            Some((first, last)) => {
                let due = (last + QUIET).min(first + MAX_DELAY);
                match conn.receiver.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Ok(m) => m,
                    Err(e) if e.is_timeout() => {
                        s.flush();
                        pending = None;
                        continue;
                    }
                    Err(_) => break,
                }
            }
        };
        match msg {
            Message::Request(req) if shutdown => {
                let resp = Response::new_err(req.id, ErrorCode::InvalidRequest as i32, "the server is shutting down".into());
                conn.sender.send(Message::Response(resp))?;
            }
            Message::Request(req) if req.method == r::Shutdown::METHOD => {
                shutdown = true;
                conn.sender.send(Message::Response(Response::new_ok(req.id, ())))?;
            }
            Message::Request(req) => {
                s.flush();
                pending = None;
                let resp = s.request(req);
                conn.sender.send(Message::Response(resp))?;
            }
            Message::Notification(not) if not.method == n::Exit::METHOD => {
                return if shutdown { Ok(()) } else { Err("exit without a shutdown request first".into()) };
            }
            Message::Notification(not) => {
                s.notification(not);
                if !s.dirty.is_empty() {
                    let now = Instant::now();
                    pending = Some((pending.map_or(now, |p| p.0), now));
                }
            }
            Message::Response(_) => {}
        }
    }
    if shutdown {
        Ok(())
    } else {
        Err("the client closed the connection without shutdown and exit".into())
    }
}

struct Server<'c> {
    conn: &'c Connection,
    docs: Documents,
    analyses: HashMap<Url, Analysis>,
    dirty: BTreeSet<Url>,
    cache: ParseCache,
}

impl Server<'_> {
    fn notification(&mut self, not: Notification) {
        match not.method.as_str() {
            n::DidOpenTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidOpenTextDocumentParams>(not.params) {
                    let uri = p.text_document.uri;
                    self.docs.open(uri.clone(), p.text_document.text, p.text_document.version);
                    self.touched(&uri);
                }
            }
            n::DidChangeTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidChangeTextDocumentParams>(not.params) {
                    let uri = p.text_document.uri;
                    if self.docs.change(&uri, p.text_document.version, p.content_changes) {
                        self.touched(&uri);
                    }
                }
            }
            n::DidSaveTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidSaveTextDocumentParams>(not.params) {
                    self.touched(&p.text_document.uri);
                }
            }
            n::DidCloseTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidCloseTextDocumentParams>(not.params) {
                    let uri = p.text_document.uri;
                    self.docs.close(&uri);
                    self.analyses.remove(&uri);
                    self.dirty.remove(&uri);
                    self.publish(uri.clone(), vec![], None);
                    // Importers now read the file from disk.
                    self.importers_dirty(&uri);
                }
            }
            // An imported file changed on disk (not open here): its importers are re-checked.
            n::DidChangeWatchedFiles::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidChangeWatchedFilesParams>(not.params) {
                    for c in p.changes {
                        if self.docs.get(&c.uri).is_none() {
                            self.importers_dirty(&c.uri);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A document changed: it and every open document importing it need a re-check.
    fn touched(&mut self, uri: &Url) {
        if self.docs.get(uri).is_some() {
            self.dirty.insert(uri.clone());
        }
        self.importers_dirty(uri);
    }

    fn importers_dirty(&mut self, uri: &Url) {
        let Ok(path) = uri.to_file_path() else { return };
        let importers: Vec<Url> = self.analyses.values().filter(|a| a.depends_on(&path)).map(|a| a.uri.clone()).collect();
        self.dirty.extend(importers);
    }

    /// Re-checks every dirty document and publishes its diagnostics.
    fn flush(&mut self) {
        for uri in std::mem::take(&mut self.dirty) {
            let Some(doc) = self.docs.get(&uri) else { continue };
            let loader = BufferLoader { docs: &self.docs, cache: &self.cache };
            let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let a = Analysis::run(&uri, &doc.text, doc.version, &loader);
                let diags = a.diagnostics();
                (a, diags)
            }));
            match checked {
                Ok((mut a, diags)) => {
                    // While a line is half typed the experiment may not expand: completion and
                    // hints keep the last designs until it does again.
                    if a.loaded.campaigns.is_empty() {
                        if let Some(old) = self.analyses.get_mut(&uri) {
                            a.loaded.campaigns = std::mem::take(&mut old.loaded.campaigns);
                        }
                    }
                    let version = a.version;
                    self.analyses.insert(uri.clone(), a);
                    self.publish(uri, diags, Some(version));
                }
                // A checker bug must not take the editor's server down: report it on the file.
                Err(_) => {
                    let d = Diagnostic {
                        message: "internal error in the nixl checker (please report it with this file)".into(),
                        severity: Some(DiagnosticSeverity::ERROR),
                        source: Some("nixl".into()),
                        ..Default::default()
                    };
                    self.publish(uri, vec![d], None);
                }
            }
        }
    }

    fn publish(&self, uri: Url, diagnostics: Vec<Diagnostic>, version: Option<i32>) {
        let params = PublishDiagnosticsParams { uri, diagnostics, version };
        let _ = self.conn.sender.send(Message::Notification(Notification::new(n::PublishDiagnostics::METHOD.into(), params)));
    }

    fn request(&mut self, req: Request) -> Response {
        let id = req.id.clone();
        let method = req.method.clone();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.dispatch(req))) {
            Ok(Ok(v)) => Response::new_ok(id, v),
            Ok(Err((code, msg))) => Response::new_err(id, code as i32, msg),
            Err(_) => Response::new_err(id, ErrorCode::InternalError as i32, format!("internal error handling {method}")),
        }
    }

    fn dispatch(&mut self, req: Request) -> Result<serde_json::Value, (ErrorCode, String)> {
        fn params<P: serde::de::DeserializeOwned>(req: Request) -> Result<P, (ErrorCode, String)> {
            serde_json::from_value(req.params).map_err(|e| (ErrorCode::InvalidParams, e.to_string()))
        }
        fn json<T: serde::Serialize>(v: T) -> Result<serde_json::Value, (ErrorCode, String)> {
            serde_json::to_value(v).map_err(|e| (ErrorCode::InternalError, e.to_string()))
        }
        let method = req.method.clone();
        match method.as_str() {
            r::HoverRequest::METHOD => {
                let p: HoverParams = params(req)?;
                let Some((a, off)) = self.at(&p.text_document_position_params) else { return json(None::<Hover>) };
                json(hover::hover(a, off as u32).map(|text| Hover {
                    contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value: text }),
                    range: None,
                }))
            }
            r::Completion::METHOD => {
                let p: CompletionParams = params(req)?;
                let uri = &p.text_document_position.text_document.uri;
                let Some(doc) = self.docs.get(uri) else { return json(None::<CompletionResponse>) };
                let off = super::convert::LineIndex::new(doc.text.as_str()).offset(p.text_document_position.position);
                json(CompletionResponse::Array(completion::complete(self.analyses.get(uri), &doc.text, off)))
            }
            r::GotoDefinition::METHOD => {
                let p: GotoDefinitionParams = params(req)?;
                let Some((a, off)) = self.at(&p.text_document_position_params) else { return json(None::<Location>) };
                json(GotoDefinitionResponse::Array(navigate::definition(a, off as u32)))
            }
            r::References::METHOD => {
                let p: ReferenceParams = params(req)?;
                let Some((a, off)) = self.at(&p.text_document_position) else { return json(None::<Location>) };
                json(navigate::references(a, off as u32, p.context.include_declaration))
            }
            r::DocumentSymbolRequest::METHOD => {
                let p: DocumentSymbolParams = params(req)?;
                let Some(a) = self.analyses.get(&p.text_document.uri) else { return json(None::<DocumentSymbolResponse>) };
                json(DocumentSymbolResponse::Nested(navigate::symbols(a)))
            }
            r::CodeActionRequest::METHOD => {
                let p: CodeActionParams = params(req)?;
                let Some(doc) = self.docs.get(&p.text_document.uri) else { return json(None::<CodeActionResponse>) };
                json(navigate::code_actions(&p.text_document.uri, &doc.text, &p.context.diagnostics))
            }
            r::Rename::METHOD => {
                let p: RenameParams = params(req)?;
                let Some((a, off)) = self.at(&p.text_document_position) else { return json(None::<WorkspaceEdit>) };
                let others = self.analyses.values().filter(|o| o.uri != a.uri);
                match super::rename::rename(a, off as u32, &p.new_name, others) {
                    Ok(edit) => json(edit),
                    Err(why) => Err((ErrorCode::InvalidParams, why)),
                }
            }
            r::DocumentHighlightRequest::METHOD => {
                let p: DocumentHighlightParams = params(req)?;
                let Some((a, off)) = self.at(&p.text_document_position_params) else {
                    return json(None::<Vec<DocumentHighlight>>);
                };
                json(super::rename::highlight(a, off as u32))
            }
            r::InlayHintRequest::METHOD => {
                let p: InlayHintParams = params(req)?;
                let Some(a) = self.analyses.get(&p.text_document.uri) else { return json(None::<Vec<InlayHint>>) };
                json(super::hints::inlay_hints(a, p.range))
            }
            r::CodeLensRequest::METHOD => {
                let p: CodeLensParams = params(req)?;
                let Some(a) = self.analyses.get(&p.text_document.uri) else { return json(None::<Vec<CodeLens>>) };
                json(super::hints::code_lenses(a))
            }
            r::FoldingRangeRequest::METHOD => {
                let p: FoldingRangeParams = params(req)?;
                let Some(a) = self.analyses.get(&p.text_document.uri) else { return json(None::<Vec<FoldingRange>>) };
                json(super::outline::folding(a))
            }
            r::WorkspaceSymbolRequest::METHOD => {
                let p: WorkspaceSymbolParams = params(req)?;
                json(super::outline::workspace_symbols(self.analyses.values(), &p.query))
            }
            r::SemanticTokensFullRequest::METHOD => {
                let p: SemanticTokensParams = params(req)?;
                let Some(a) = self.analyses.get(&p.text_document.uri) else { return json(None::<SemanticTokens>) };
                json(SemanticTokens { result_id: None, data: super::outline::semantic_tokens(a) })
            }
            r::Formatting::METHOD => {
                let p: DocumentFormattingParams = params(req)?;
                let Some(doc) = self.docs.get(&p.text_document.uri) else { return json(None::<Vec<TextEdit>>) };
                json(navigate::format(&doc.text))
            }
            m => Err((ErrorCode::MethodNotFound, format!("nixl lsp does not handle {m}"))),
        }
    }

    /// The analysis of a document and the byte offset of a position in it.
    fn at(&self, p: &TextDocumentPositionParams) -> Option<(&Analysis, usize)> {
        let a = self.analyses.get(&p.text_document.uri)?;
        Some((a, a.lines.offset(p.position)))
    }
}
