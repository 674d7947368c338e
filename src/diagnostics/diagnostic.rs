//! The diagnostic type and the spans it points with. Nothing here depends on the rest
//! of the crate: `build.rs` compiles it with the parser to parse the standard library.

use serde::Serialize;
use std::fmt;

/// Index of a file in the [`SourceMap`].
pub type FileId = u32;

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

std::thread_local! {
    /// While set, every span deserialized on this thread points into this file instead:
    /// the standard library's trees are parsed at build time, before their files have ids.
    static FILE_OF_DESERIALIZED_SPANS: std::cell::Cell<Option<FileId>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every span it deserializes moved into `file`.
pub fn deserialize_spans_into<T>(file: FileId, f: impl FnOnce() -> T) -> T {
    let before = FILE_OF_DESERIALIZED_SPANS.with(|c| c.replace(Some(file)));
    let out = f();
    FILE_OF_DESERIALIZED_SPANS.with(|c| c.set(before));
    out
}

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename = "Span")]
        struct Stored {
            file: FileId,
            start: u32,
            end: u32,
        }
        let s = Stored::deserialize(d)?;
        let file = FILE_OF_DESERIALIZED_SPANS.with(|c| c.get()).unwrap_or(s.file);
        Ok(Span { file, start: s.start, end: s.end })
    }
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start: start as u32, end: end as u32 }
    }
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    pub fn to(self, other: Span) -> Span {
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Stable diagnostic codes. The number never changes meaning; `docs/diagnostics.md` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// A statement that does not parse.
    Syntax,
    /// An unclosed or unmatched bracket, brace or parenthesis.
    Delimiter,
    /// Input over the size or nesting limits.
    Limit,
    /// Bytes that are not UTF-8 text.
    Encoding,
    /// An invalid string escape or number literal.
    Literal,
    /// An import that cannot be found or read.
    ImportNotFound,
    /// Files importing each other in a cycle.
    ImportCycle,
    /// A name that is not defined anywhere in scope.
    UnknownName,
    /// Two definitions with the same name or id.
    Duplicate,
    /// A value of the wrong type.
    Type,
    /// Quantities with incompatible units.
    Unit,
    /// A required attribute that is missing.
    MissingAttribute,
    /// An attribute the block kind does not have.
    UnknownAttribute,
    /// A block kind that is unknown or not allowed where it stands.
    UnknownBlock,
    /// A value outside its domain (catalogue, enumeration, range).
    Domain,
    /// An availability zone outside the stack's region.
    Zone,
    /// A reference to a node, layer, step, pattern or setup that does not exist.
    UnknownReference,
    /// An expression that cannot be evaluated (division by zero, bad argument).
    Eval,
    /// SSH open to the whole internet (`0.0.0.0/0`, `::/0`), allowed by an `ssh_reason`.
    WorldOpenSsh,
    /// A `secret(...)` that is malformed, or written where its value would reach a script.
    Secret,
    /// A prune or design that leaves a layer with no pattern.
    EmptyDesign,
    /// A design point outside the declared factor levels.
    PointOutsideLevels,
    /// A d-optimal design whose run budget does not fit the candidate set.
    DesignBudget,
    /// An effect the remaining design can no longer estimate.
    Unestimable,
    /// A prune that removes no pattern.
    IdlePrune,
    /// A dependency cycle in the action graph.
    Cycle,
    /// A pinned order that needs more server launches than necessary.
    OrderCost,
    /// A prompt plus its output tokens that do not fit the server's max_model_len.
    ContextLength,
    /// A server, bench or factor setting that reaches no command.
    UnusedSetting,
    /// A KV cache too small to hold one request of the largest prompt.
    KvCacheFit,
    /// A server start-up estimate longer than its health timeout.
    StartupOverHealth,
    /// A transport or backend the instance type cannot do.
    Hardware,
    /// A command template that cannot be rendered for a pattern.
    Render,
    /// A launch's layout the stack cannot run: a role's TP above a node's GPUs, a count
    /// that is not a whole number of nodes, replicas without a proxy.
    Topology,
    /// Apply found no capacity for the stack's nodes in any zone it may use.
    NoCapacity,
    /// The cloud refused the stack's resources: quota, credentials or configuration.
    CloudRefused,
    /// A secret apply cannot read: an unset environment variable, a missing SSM parameter.
    SecretUnreadable,
}

impl Code {
    pub fn number(self) -> u16 {
        use Code::*;
        match self {
            Syntax => 1,
            Delimiter => 2,
            Limit => 3,
            Encoding => 4,
            Literal => 5,
            ImportNotFound => 101,
            ImportCycle => 102,
            UnknownName => 103,
            Duplicate => 104,
            Type => 201,
            Unit => 202,
            MissingAttribute => 203,
            UnknownAttribute => 204,
            UnknownBlock => 205,
            Domain => 206,
            Zone => 207,
            UnknownReference => 208,
            Eval => 209,
            WorldOpenSsh => 210,
            Secret => 211,
            EmptyDesign => 301,
            PointOutsideLevels => 302,
            DesignBudget => 303,
            Unestimable => 304,
            IdlePrune => 305,
            Cycle => 401,
            OrderCost => 402,
            NoCapacity => 501,
            ContextLength => 601,
            UnusedSetting => 602,
            KvCacheFit => 603,
            StartupOverHealth => 604,
            Hardware => 605,
            Render => 606,
            Topology => 607,
            CloudRefused => 502,
            SecretUnreadable => 503,
        }
    }
    /// Codes only apply reports: the cloud says no, or a secret cannot be read. (E0504, `parallel`
    /// > 1 refused on AWS, is retired: apply runs node sets there too; the number is not reused.)
    pub const RUNTIME: [Code; 3] = [Code::NoCapacity, Code::CloudRefused, Code::SecretUnreadable];

    /// Every code a file can cause, each with an invalid input under tests/golden/invalid.
    pub const ALL: [Code; 34] = {
        use Code::*;
        [
            Syntax,
            Delimiter,
            Limit,
            Encoding,
            Literal,
            ImportNotFound,
            ImportCycle,
            UnknownName,
            Duplicate,
            Type,
            Unit,
            MissingAttribute,
            UnknownAttribute,
            UnknownBlock,
            Domain,
            Zone,
            UnknownReference,
            Eval,
            WorldOpenSsh,
            Secret,
            EmptyDesign,
            PointOutsideLevels,
            DesignBudget,
            Unestimable,
            IdlePrune,
            Cycle,
            OrderCost,
            ContextLength,
            UnusedSetting,
            KvCacheFit,
            StartupOverHealth,
            Hardware,
            Render,
            Topology,
        ]
    };
}

impl Code {
    /// Warnings: the file is valid, but probably not what is meant (`W` codes, exit 0).
    pub fn is_warning(self) -> bool {
        use Code::*;
        matches!(self, WorldOpenSsh | Unestimable | IdlePrune | OrderCost | KvCacheFit | StartupOverHealth)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.is_warning() { "W" } else { "E" };
        write!(f, "nixl::{prefix}{:04}", self.number())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// The primary location; its message may be empty.
    pub primary: Label,
    /// Further locations, possibly in other files (the other definition of a duplicate).
    pub secondary: Vec<Label>,
    pub help: Option<String>,
    /// What the primary span should read instead (a "did you mean" name): the
    /// editor's quick fix, kept as data so nothing parses the help text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// The name the diagnostic is about (an unknown name), for whoever adds a suggestion later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// A help line, and the replacement it proposes when it is a "did you mean".
#[derive(Clone, Debug, PartialEq)]
pub struct Help {
    pub text: String,
    pub replacement: Option<String>,
}

impl From<String> for Help {
    fn from(text: String) -> Help {
        Help { text, replacement: None }
    }
}

impl From<&str> for Help {
    fn from(text: &str) -> Help {
        Help { text: text.to_string(), replacement: None }
    }
}

/// A "did you mean" if there is one, else the help line `otherwise` gives.
pub trait OrHelp {
    fn or_help(self, otherwise: impl FnOnce() -> String) -> Help;
}

impl OrHelp for Option<Help> {
    fn or_help(self, otherwise: impl FnOnce() -> String) -> Help {
        self.unwrap_or_else(|| Help::from(otherwise()))
    }
}

impl fmt::Display for Help {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Diagnostic {
    pub fn error(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: if code.is_warning() { Severity::Warning } else { Severity::Error },
            message: message.into(),
            primary: Label { span, message: String::new() },
            secondary: Vec::new(),
            help: None,
            suggestion: None,
            subject: None,
        }
    }
    pub fn label(mut self, message: impl Into<String>) -> Self {
        self.primary.message = message.into();
        self
    }
    pub fn with(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label { span, message: message.into() });
        self
    }
    pub fn help(mut self, help: impl Into<Help>) -> Self {
        let help = help.into();
        self.help = Some(help.text);
        if help.replacement.is_some() {
            self.suggestion = help.replacement;
        }
        self
    }
    /// Names what the diagnostic is about (the unknown name itself).
    pub fn subject(mut self, name: impl Into<String>) -> Self {
        self.subject = Some(name.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// "did you mean" for a misspelt name: the closest candidate within a small
/// edit distance, as help text that carries the candidate as its replacement.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<Help> {
    let limit = (name.chars().count() / 3).max(1) + usize::from(name.len() > 8);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, c)| Help { text: format!("did you mean `{c}`?"), replacement: Some(c.to_string()) })
}

pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(!a[i - 1].eq_ignore_ascii_case(&b[j - 1]));
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The text of every file read in one run, so diagnostics can be rendered.
#[derive(Default, Debug, Clone)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: std::sync::Arc<str>,
}

impl SourceMap {
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<std::sync::Arc<str>>) -> FileId {
        self.files.push(SourceFile { name: name.into(), text: text.into() });
        (self.files.len() - 1) as FileId
    }
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id as usize]
    }
    pub fn find(&self, name: &str) -> Option<FileId> {
        self.files.iter().position(|f| f.name == name).map(|i| i as FileId)
    }
    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (i as FileId, f))
    }
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, file: FileId, offset: u32) -> (usize, usize) {
        let text = &self.get(file).text;
        let offset = (offset as usize).min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        (line, col)
    }
}

pub fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}
