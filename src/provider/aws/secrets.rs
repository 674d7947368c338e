//! Secrets for the nodes through SSM Parameter Store. Apply puts each secret a setup step reads as
//! a SecureString under the stack's own prefix (`/nixl/<stack>/secrets/...`, tagged with the
//! stack); the node role may read that prefix and nothing else; the command SSM runs reads the
//! parameter into the step's environment before the script starts. The value is in no script, no
//! command line and no state. Destroy deletes the prefix.

use super::errors::{classify, with_retry};
use super::AwsProvider;
use crate::check::model::Stack;
use crate::design::render::shell_quote;
use crate::provider::{ProviderError, SecretEnv};
use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging, Tag};

/// Where a stack's secrets live: the only parameters its nodes may read.
pub fn prefix(stack: &str) -> String {
    format!("/nixl/{stack}/secrets")
}

/// One secret's parameter: `/nixl/<stack>/secrets/env/HF_TOKEN`.
pub fn parameter_name(stack: &str, key: &str) -> String {
    format!("{}/{key}", prefix(stack))
}

/// Puts each secret as a SecureString under the stack's prefix, once per apply and value (the
/// value may have changed since the last apply: it is written again, never compared by reading).
/// Returns each variable with the parameter it is read from.
pub async fn ensure(p: &AwsProvider, stack: &Stack, secrets: &[SecretEnv]) -> Result<Vec<(String, String)>, ProviderError> {
    let mut out = vec![];
    for s in secrets {
        let name = parameter_name(&stack.name, &s.key);
        let stored = format!("{name}#{}", crate::state::content_hash(&s.value.expose()));
        if !p.stored.lock().unwrap_or_else(|e| e.into_inner()).contains(&stored) {
            put(p, stack, &name, s).await?;
            p.stored.lock().unwrap_or_else(|e| e.into_inner()).insert(stored);
        }
        out.push((s.var.clone(), name));
    }
    Ok(out)
}

async fn put(p: &AwsProvider, stack: &Stack, name: &str, s: &SecretEnv) -> Result<(), ProviderError> {
    with_retry(&*p.sink, "PutParameter", || async {
        p.ssm()
            .put_parameter()
            .name(name)
            .value(s.value.expose())
            .r#type(ParameterType::SecureString)
            .overwrite(true)
            .description(format!("nixl: secret {} of stack {}, read by its nodes", s.var, stack.name))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e, "", ""))
    })
    .await?;
    // Tags cannot go with an overwrite; added after, so destroy and the operator find it by tag too.
    let tag = Tag::builder()
        .key(super::template::STACK_TAG)
        .value(&stack.name)
        .build()
        .map_err(|e| ProviderError::Other(e.to_string()))?;
    with_retry(&*p.sink, "AddTagsToResource", || async {
        p.ssm()
            .add_tags_to_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .tags(tag.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e, "", ""))
    })
    .await
}

/// The decrypted value of a SecureString (or any) parameter.
pub async fn read(p: &AwsProvider, name: &str) -> Result<String, ProviderError> {
    let out = with_retry(&*p.sink, "GetParameter", || async {
        p.ssm().get_parameter().name(name).with_decryption(true).send().await.map_err(|e| classify(&e, "", ""))
    })
    .await?;
    out.parameter()
        .and_then(|x| x.value())
        .map(str::to_string)
        .ok_or_else(|| ProviderError::NotFound(format!("parameter {name} has no value")))
}

/// Deletes every parameter under the stack's prefix; returns how many.
pub async fn delete_all(p: &AwsProvider, stack: &str) -> Result<usize, ProviderError> {
    let mut names = vec![];
    let mut next: Option<String> = None;
    loop {
        let page = with_retry(&*p.sink, "GetParametersByPath", || async {
            p.ssm()
                .get_parameters_by_path()
                .path(prefix(stack))
                .recursive(true)
                .set_next_token(next.clone())
                .send()
                .await
                .map_err(|e| classify(&e, "", ""))
        })
        .await?;
        names.extend(page.parameters().iter().filter_map(|x| x.name().map(str::to_string)));
        next = page.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    // DeleteParameters takes at most 10 names.
    for batch in names.chunks(10) {
        with_retry(&*p.sink, "DeleteParameters", || async {
            p.ssm().delete_parameters().set_names(Some(batch.to_vec())).send().await.map(|_| ()).map_err(|e| classify(&e, "", ""))
        })
        .await?;
    }
    Ok(names.len())
}

/// The lines a node runs before the script: each secret read from its parameter into the
/// variable the step reads (exit 125, naming both, when the node cannot read it).
pub fn exports(region: &str, params: &[(String, String)]) -> Vec<String> {
    let mut lines = vec![];
    for (var, name) in params {
        let why =
            format!("nixl: cannot read the secret {var} from SSM parameter {name}: the node role reads the stack's secrets only");
        lines.push(format!(
            "{var}=\"$(aws ssm get-parameter --region {} --with-decryption --name {} --query Parameter.Value --output text)\" || {{ echo {} >&2; exit 125; }}",
            shell_quote(region),
            shell_quote(name),
            shell_quote(&why)
        ));
        lines.push(format!("export {var}"));
    }
    lines
}
