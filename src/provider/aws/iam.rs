//! The IAM policy an operator needs to apply and destroy one stack: the calls this
//! provider makes, and the ones CloudFormation makes with the operator's credentials
//! to create the template's resources, each on that stack's resources where IAM can
//! say so (names CloudFormation derives from the stack, the `nixl:stack` tag, the
//! region). `nixl iam-policy FILE` prints it.

use super::template::STACK_TAG;
use crate::check::model::Stack;
use serde_json::{json, Value};

/// The policy document for `stack`, in its regions, for any account; `parameters` are the SSM
/// parameters its setup reads secrets from (`secret("ssm:...")`). With `regions = [...]`, each
/// later region adds its own copies of the statements scoped to a region, named after it.
pub fn operator_policy(stack: &Stack, parameters: &[&str]) -> Value {
    let mut all = statements(stack, parameters);
    for choice in stack.regions.iter().skip(1) {
        let first = all.clone();
        for mut s in statements(&stack.in_region(choice), parameters) {
            if !first.contains(&s) {
                let sid = format!("{}In{}", s["Sid"].as_str().unwrap_or_default(), sid_part(&choice.region));
                s["Sid"] = Value::String(sid);
                all.push(s);
            }
        }
    }
    json!({ "Version": "2012-10-17", "Statement": all })
}

/// "us-west-2" as a statement id may hold it: "UsWest2".
fn sid_part(region: &str) -> String {
    region
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The statements for `stack` in its region.
fn statements(stack: &Stack, parameters: &[&str]) -> Vec<Value> {
    let mut statements = vec![cloudformation(stack), ec2_read(stack)];
    statements.extend(ec2_nodes(stack));
    statements.push(ec2_base(stack));
    statements.extend(iam(stack));
    statements.extend(s3(stack));
    statements.extend(ssm(stack));
    statements.extend(secrets(stack, parameters));
    if let Some(kms) = kms(stack) {
        statements.push(kms);
    }
    statements
}

/// The policy as printed: stable, pretty JSON.
pub fn operator_policy_json(stack: &Stack, parameters: &[&str]) -> String {
    serde_json::to_string_pretty(&operator_policy(stack, parameters)).expect("policy serialises")
}

fn region(stack: &Stack) -> Value {
    json!({ "StringEquals": { "aws:RequestedRegion": stack.region } })
}

/// Condition: the resource carries the stack's tag.
fn tagged(stack: &Stack, key: &str) -> Value {
    json!({ "StringEquals": { format!("{key}/{STACK_TAG}"): stack.name } })
}

fn cloudformation(stack: &Stack) -> Value {
    let (r, name) = (&stack.region, &stack.name);
    json!({
        "Sid": "TheStack",
        "Effect": "Allow",
        "Action": [
            "cloudformation:CreateStack", "cloudformation:DeleteStack", "cloudformation:DescribeStacks",
            "cloudformation:DescribeStackEvents", "cloudformation:GetTemplate", "cloudformation:TagResource",
            "cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet",
            "cloudformation:ExecuteChangeSet", "cloudformation:DeleteChangeSet"
        ],
        "Resource": [
            format!("arn:aws:cloudformation:{r}:*:stack/{name}/*"),
            format!("arn:aws:cloudformation:{r}:*:changeSet/nixl-*/*")
        ]
    })
}

/// Describe calls, which IAM cannot narrow to resources: the stack's region only.
fn ec2_read(stack: &Stack) -> Value {
    json!({
        "Sid": "Ec2Describe",
        "Effect": "Allow",
        "Action": [
            "ec2:DescribeInstances", "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeSubnets",
            "ec2:DescribePlacementGroups", "ec2:DescribeSecurityGroups", "ec2:DescribeImages"
        ],
        "Resource": "*",
        "Condition": region(stack)
    })
}

/// Launch only instances and volumes tagged with the stack at launch; start, stop, tag and
/// terminate only instances that carry the tag.
fn ec2_nodes(stack: &Stack) -> Vec<Value> {
    let r = &stack.region;
    vec![
        json!({
            "Sid": "LaunchTaggedNodes",
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": [format!("arn:aws:ec2:{r}:*:instance/*"), format!("arn:aws:ec2:{r}:*:volume/*")],
            "Condition": tagged(stack, "aws:RequestTag")
        }),
        json!({
            "Sid": "LaunchWith",
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": [
                format!("arn:aws:ec2:{r}::image/*"),
                format!("arn:aws:ec2:{r}:*:subnet/*"),
                format!("arn:aws:ec2:{r}:*:network-interface/*"),
                format!("arn:aws:ec2:{r}:*:security-group/*"),
                format!("arn:aws:ec2:{r}:*:placement-group/*"),
                format!("arn:aws:ec2:{r}:*:capacity-reservation/*")
            ]
        }),
        json!({
            "Sid": "TagAtLaunch",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": [format!("arn:aws:ec2:{r}:*:instance/*"), format!("arn:aws:ec2:{r}:*:volume/*")],
            "Condition": { "StringEquals": { "ec2:CreateAction": "RunInstances" } }
        }),
        json!({
            "Sid": "TheStacksNodes",
            "Effect": "Allow",
            "Action": ["ec2:CreateTags", "ec2:StartInstances", "ec2:TerminateInstances"],
            "Resource": format!("arn:aws:ec2:{r}:*:instance/*"),
            "Condition": tagged(stack, "ec2:ResourceTag")
        }),
    ]
}

/// What CloudFormation creates for the stack in EC2: its security group and placement group.
fn ec2_base(stack: &Stack) -> Value {
    json!({
        "Sid": "StackNetwork",
        "Effect": "Allow",
        "Action": [
            "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:AuthorizeSecurityGroupIngress",
            "ec2:RevokeSecurityGroupIngress", "ec2:CreatePlacementGroup", "ec2:DeletePlacementGroup", "ec2:CreateTags"
        ],
        "Resource": [
            format!("arn:aws:ec2:{}:*:security-group/*", stack.region),
            format!("arn:aws:ec2:{}:*:security-group-rule/*", stack.region),
            format!("arn:aws:ec2:{}:*:placement-group/*", stack.region),
            format!("arn:aws:ec2:{}:*:vpc/*", stack.region)
        ],
        "Condition": region(stack)
    })
}

/// The node role and its instance profile, by the names CloudFormation gives them
/// (`<stack>-Role-<suffix>`), and passing that role to EC2, no other.
fn iam(stack: &Stack) -> Vec<Value> {
    let role = node_role_arn(stack);
    let profile = format!("arn:aws:iam::*:instance-profile/{}-InstanceProfile-*", stack.name);
    vec![
        json!({
            "Sid": "NodeRole",
            "Effect": "Allow",
            "Action": [
                "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:TagRole", "iam:UntagRole",
                "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
                "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
                "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile"
            ],
            "Resource": [role.clone(), profile]
        }),
        json!({
            "Sid": "PassNodeRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": role,
            "Condition": { "StringEquals": { "iam:PassedToService": "ec2.amazonaws.com" } }
        }),
    ]
}

/// The node role's ARN pattern: CloudFormation names it `<stack>-Role-<suffix>`.
pub fn node_role_arn(stack: &Stack) -> String {
    format!("arn:aws:iam::*:role/{}-Role-*", stack.name)
}

/// The bucket CloudFormation names `<stack, lower case>-bucket-<suffix>`: its settings, and
/// its objects (scripts up, results down, everything out at destroy).
fn s3(stack: &Stack) -> Vec<Value> {
    let bucket = format!("arn:aws:s3:::{}-bucket-*", stack.name.to_lowercase());
    vec![
        json!({
            "Sid": "TheBucket",
            "Effect": "Allow",
            "Action": [
                "s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation",
                "s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketPublicAccessBlock",
                "s3:PutEncryptionConfiguration", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration",
                "s3:PutBucketTagging"
            ],
            "Resource": bucket.clone()
        }),
        json!({
            "Sid": "TheBucketsObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": format!("{bucket}/*")
        }),
    ]
}

/// Commands only through AWS-RunShellScript and only to the stack's nodes; the AMI parameter
/// when the stack names one. (The command calls and the agent listing have no resource to narrow.)
fn ssm(stack: &Stack) -> Vec<Value> {
    let r = &stack.region;
    let mut out = vec![
        json!({
            "Sid": "CommandsToTheStacksNodes",
            "Effect": "Allow",
            "Action": "ssm:SendCommand",
            "Resource": format!("arn:aws:ec2:{r}:*:instance/*"),
            "Condition": tagged(stack, "ssm:resourceTag")
        }),
        json!({
            "Sid": "RunShellScriptOnly",
            "Effect": "Allow",
            "Action": "ssm:SendCommand",
            "Resource": format!("arn:aws:ssm:{r}::document/AWS-RunShellScript")
        }),
        json!({
            "Sid": "CommandResults",
            "Effect": "Allow",
            "Action": ["ssm:GetCommandInvocation", "ssm:CancelCommand", "ssm:DescribeInstanceInformation"],
            "Resource": "*",
            "Condition": region(stack)
        }),
    ];
    if let (None, Some(name)) = (&stack.ami, &stack.ami_parameter) {
        let name = name.strip_prefix('/').unwrap_or(name);
        out.push(json!({
            "Sid": "AmiParameter",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": format!("arn:aws:ssm:{r}:*:parameter/{name}")
        }));
    }
    out
}

/// The stack's secrets under `/nixl/<stack>/secrets` (put by apply, listed and deleted by destroy),
/// and the parameters the file reads secrets from, each by name.
fn secrets(stack: &Stack, parameters: &[&str]) -> Vec<Value> {
    let (r, prefix) = (&stack.region, super::secrets::prefix(&stack.name));
    let mut out = vec![json!({
        "Sid": "TheStacksSecrets",
        "Effect": "Allow",
        "Action": [
            "ssm:PutParameter", "ssm:AddTagsToResource", "ssm:GetParametersByPath",
            "ssm:DeleteParameter", "ssm:DeleteParameters"
        ],
        "Resource": [format!("arn:aws:ssm:{r}:*:parameter{prefix}"), format!("arn:aws:ssm:{r}:*:parameter{prefix}/*")]
    })];
    if !parameters.is_empty() {
        // A SecureString under a customer key also needs kms:Decrypt on that key (docs/running.md).
        let names: Vec<String> =
            parameters.iter().map(|p| format!("arn:aws:ssm:{r}:*:parameter/{}", p.trim_start_matches('/'))).collect();
        out.push(json!({ "Sid": "SecretsTheFileReads", "Effect": "Allow", "Action": "ssm:GetParameter", "Resource": names }));
    }
    out
}

/// EBS encrypts the volumes with `kms_key` on the operator's behalf.
fn kms(stack: &Stack) -> Option<Value> {
    let key = stack.kms_key.as_ref()?;
    let resource = if key.starts_with("arn:aws:kms:") && key.contains(":key/") {
        key.clone()
    } else {
        format!("arn:aws:kms:{}:*:key/*", stack.region)
    };
    Some(json!({
        "Sid": "VolumeKey",
        "Effect": "Allow",
        "Action": ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*"],
        "Resource": resource,
        "Condition": { "StringEquals": { "kms:ViaService": format!("ec2.{}.amazonaws.com", stack.region) } }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_with_two_regions_is_allowed_its_calls_in_both_and_no_third() {
        let text = r#"import "std/aws"
stack "s" {
  regions = [{ region = "us-east-1", zones = ["us-east-1a"] }, { region = "us-west-2", zones = ["us-west-2a"] }]
  instance_type = "g6e.12xlarge"
  ami_parameter = "/aws/service/x"
  node "node1" {}
}
"#;
        let model = crate::check::clean_model(text);
        let policy = operator_policy(&model.stacks[0], &[]);
        let statements = policy["Statement"].as_array().unwrap();
        let sid = |s: &Value| s["Sid"].as_str().unwrap_or_default().to_string();
        let sids: Vec<String> = statements.iter().map(sid).collect();
        assert!(sids.contains(&"TheStack".to_string()) && sids.contains(&"TheStackInUsWest2".to_string()), "{sids:?}");
        // Statements without a region (the node role) are there once.
        assert_eq!(sids.iter().filter(|s| s.starts_with("PassNodeRole")).count(), 1, "{sids:?}");
        let unique: std::collections::BTreeSet<&String> = sids.iter().collect();
        assert_eq!(unique.len(), sids.len(), "statement ids must be unique: {sids:?}");
        let text = policy.to_string();
        assert!(text.contains("arn:aws:cloudformation:us-west-2:*:stack/s/*"), "{text}");
        assert!(!text.contains("eu-west-1"), "{text}");
    }
}
