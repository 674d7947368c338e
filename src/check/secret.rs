//! `secret("env:NAME")` and `secret("ssm:/path/name")`: a value apply reads when it runs (the
//! environment variable NAME of the apply process, or an SSM SecureString parameter) and hands to
//! a setup step as an environment variable. The file, the model, the plan and the state hold only
//! the reference; its value never reaches a script. It is allowed only as the whole value of an
//! entry of a setup step's `env`, where it is read here; anywhere else the evaluator refuses it.

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::syntax::ast::{Arg, Expr};
use serde::{Serialize, Serializer};
use std::fmt;

/// Where a secret is read when apply runs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretSource {
    /// An environment variable of the apply process.
    Env(String),
    /// An SSM parameter (a SecureString), by its name: `/team/hf-token`.
    Ssm(String),
}

/// A `secret(...)` as written, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub source: SecretSource,
    pub span: Span,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "env:{name}"),
            SecretSource::Ssm(path) => write!(f, "ssm:{path}"),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "secret(\"{}\")", self.source)
    }
}

/// Hashed and shown as the reference (`{"secret": "env:HF_TOKEN"}`): a new value of the same
/// secret changes no hash, so nothing runs again for it.
impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("secret", &self.source.to_string())?;
        m.end()
    }
}

impl SecretSource {
    /// Where nixl keeps it for the nodes, below the stack's own prefix: `env/HF_TOKEN`,
    /// `ssm/team/hf-token`. Every character is one SSM allows in a parameter name.
    pub fn key(&self) -> String {
        match self {
            SecretSource::Env(name) => format!("env/{name}"),
            SecretSource::Ssm(path) => format!("ssm/{}", path.trim_start_matches('/')),
        }
    }
}

/// How to write one, for every help line.
const FORMS: &str =
    "write secret(\"env:NAME\") to read the environment variable NAME when apply runs, or secret(\"ssm:/path/name\") for an SSM SecureString parameter";

/// A `secret(...)` call's arguments as a reference, or the diagnostic that says what is wrong.
pub fn parse(args: &[Arg], call: Span) -> Result<SecretRef, Box<Diagnostic>> {
    let refuse = |span: Span, message: String| Box::new(Diagnostic::error(Code::Secret, span, message).help(FORMS));
    let [Arg { name: None, value }] = args else {
        return Err(refuse(call, "`secret` takes one string: where to read the secret".into()));
    };
    let Some(text) = value.as_plain_str() else {
        return Err(refuse(value.span, "`secret` takes a plain string (no `{...}`): the file names the secret itself".into()));
    };
    let source = match text.split_once(':') {
        Some(("env", name)) if is_env_name(name) => SecretSource::Env(name.to_string()),
        Some(("env", name)) => {
            return Err(refuse(
                value.span,
                format!("`{name}` is not an environment variable name (letters, digits and `_`, not starting with a digit)"),
            ))
        }
        Some(("ssm", path)) if is_parameter_name(path) => SecretSource::Ssm(path.to_string()),
        Some(("ssm", path)) => {
            return Err(refuse(
                value.span,
                format!("`{path}` is not an SSM parameter name (letters, digits and `_.-/`, at most 1011, not starting with `aws` or `ssm`)"),
            ))
        }
        Some((scheme, _)) => return Err(refuse(value.span, format!("`{scheme}:` is not a place nixl reads secrets from"))),
        None => return Err(refuse(value.span, format!("`{text}` does not say where to read the secret"))),
    };
    Ok(SecretRef { source, span: value.span.to(call) })
}

/// The error for a `secret(...)` anywhere but a setup step's `env`.
pub fn misplaced(call: &Expr) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::error(Code::Secret, call.span, "`secret(...)` can only be the value of an entry of a setup step's `env`")
            .label("its value would be written into a script, the plan or the state here")
            .help("give it to the step as an environment variable, `env = { TOKEN = secret(\"env:TOKEN\") }`, and read `$TOKEN` in `run`"),
    )
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// SSM's rule for parameter names (a leading `/` makes a hierarchy).
fn is_parameter_name(s: &str) -> bool {
    let bare = s.trim_start_matches('/').to_ascii_lowercase();
    !bare.is_empty()
        && s.len() <= 1011
        && !bare.starts_with("aws")
        && !bare.starts_with("ssm")
        && !s.contains("//")
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules_of_the_environment_and_of_ssm() {
        assert!(is_env_name("HF_TOKEN") && is_env_name("_x1") && !is_env_name("1X") && !is_env_name("A-B") && !is_env_name(""));
        assert!(is_parameter_name("/team/hf-token") && is_parameter_name("token.v2"));
        assert!(!is_parameter_name("/aws/reserved") && !is_parameter_name("ssm-x") && !is_parameter_name("/a b"));
        assert!(!is_parameter_name("/") && !is_parameter_name("/a//b"));
    }

    #[test]
    fn the_key_below_the_stacks_prefix_keeps_the_name() {
        assert_eq!(SecretSource::Env("HF_TOKEN".into()).key(), "env/HF_TOKEN");
        assert_eq!(SecretSource::Ssm("/team/hf-token".into()).key(), "ssm/team/hf-token");
    }
}
