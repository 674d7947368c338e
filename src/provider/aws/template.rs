//! The CloudFormation template for a `stack` block's base resources: security
//! group (all traffic between the nodes, as EFA needs; SSH only from a given
//! CIDR, IPv4 or IPv6), IAM role and instance profile (the SSM agent's calls
//! without parameter reads but the stack's own secrets; read of the scripts, write of the output
//! prefixes only), the bucket (public access blocked, encrypted, TLS only, versioned on
//! request, output expiring) and the cluster placement group. Nodes
//! are not in it: they are launched with RunInstances so a capacity error can
//! move to the next zone in seconds instead of a stack rollback.

use super::ssm::{FETCH_PREFIX, OUTPUT_PREFIX, SCRIPTS_PREFIX};
use crate::check::model::Stack;
use serde_json::{json, Map, Value};

/// Output names the provider reads back.
pub const OUT_SECURITY_GROUP: &str = "SecurityGroupId";
pub const OUT_INSTANCE_PROFILE: &str = "InstanceProfileArn";
pub const OUT_BUCKET: &str = "BucketName";
pub const OUT_PLACEMENT_GROUP: &str = "PlacementGroupName";

/// The tag every resource nixl creates carries, so nothing it pays for can hide.
pub const STACK_TAG: &str = "nixl:stack";

/// Days after which command output and fetched files expire from the bucket
/// (and, in a versioned bucket, old versions of anything).
pub const OUTPUT_EXPIRY_DAYS: u32 = 30;

pub fn template(stack: &Stack) -> Value {
    let tags = json!([{ "Key": STACK_TAG, "Value": stack.name }]);
    let mut res = Map::new();
    res.insert(
        "SecurityGroup".into(),
        json!({
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": format!("nixl {}: nodes talk to each other freely (EFA needs it)", stack.name),
                "Tags": tags,
            }
        }),
    );
    res.insert(
        "SelfIngress".into(),
        json!({
            "Type": "AWS::EC2::SecurityGroupIngress",
            "Properties": {
                "GroupId": { "Fn::GetAtt": ["SecurityGroup", "GroupId"] },
                "IpProtocol": "-1",
                "SourceSecurityGroupId": { "Fn::GetAtt": ["SecurityGroup", "GroupId"] },
            }
        }),
    );
    if let Some(ingress) = ssh_ingress(stack) {
        res.insert("SshIngress".into(), ingress);
    }
    res.insert("Bucket".into(), bucket(stack, &tags));
    res.insert("BucketPolicy".into(), tls_only_policy());
    res.insert("Role".into(), role(stack, &tags));
    res.insert(
        "InstanceProfile".into(),
        json!({ "Type": "AWS::IAM::InstanceProfile", "Properties": { "Roles": [{ "Ref": "Role" }] } }),
    );
    res.insert(
        "PlacementGroup".into(),
        json!({ "Type": "AWS::EC2::PlacementGroup", "Properties": { "Strategy": stack.placement, "Tags": tags } }),
    );
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("nixl base resources for stack {} (generated; edit the .nixl file instead)", stack.name),
        "Resources": res,
        "Outputs": {
            OUT_SECURITY_GROUP: { "Value": { "Fn::GetAtt": ["SecurityGroup", "GroupId"] } },
            OUT_INSTANCE_PROFILE: { "Value": { "Fn::GetAtt": ["InstanceProfile", "Arn"] } },
            OUT_BUCKET: { "Value": { "Ref": "Bucket" } },
            OUT_PLACEMENT_GROUP: { "Value": { "Ref": "PlacementGroup" } },
        }
    })
}

/// Port 22 from `ssh_cidr`, as an IPv6 rule when the block is IPv6; a world-open rule
/// carries the reason the file gives for it.
fn ssh_ingress(stack: &Stack) -> Option<Value> {
    let cidr = stack.ssh_cidr.as_ref()?;
    let mut props = json!({
        "GroupId": { "Fn::GetAtt": ["SecurityGroup", "GroupId"] },
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
    });
    props[if cidr.is_v6() { "CidrIpv6" } else { "CidrIp" }] = json!(cidr.to_string());
    let mut rule = json!({ "Type": "AWS::EC2::SecurityGroupIngress", "Properties": props });
    if let Some(reason) = &stack.ssh_reason {
        rule["Metadata"] = json!({ "nixl:ssh_reason": reason });
    }
    Some(rule)
}

/// Public access blocked, encrypted, versioned when a `bucket` block says so; command output
/// and fetched files expire after [`OUTPUT_EXPIRY_DAYS`].
fn bucket(stack: &Stack, tags: &Value) -> Value {
    let expire = |id: &str, prefix: &str| json!({ "Id": id, "Status": "Enabled", "Prefix": format!("{prefix}/"), "ExpirationInDays": OUTPUT_EXPIRY_DAYS });
    let mut rules = vec![expire("command-output", OUTPUT_PREFIX), expire("fetched-files", FETCH_PREFIX)];
    rules.push(json!({ "Id": "unfinished-uploads", "Status": "Enabled", "AbortIncompleteMultipartUpload": { "DaysAfterInitiation": 7 } }));
    let mut props = json!({
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": true, "BlockPublicPolicy": true,
            "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
        },
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                { "ServerSideEncryptionByDefault": { "SSEAlgorithm": "AES256" } }
            ]
        },
        "Tags": tags,
    });
    if stack.versioned {
        props["VersioningConfiguration"] = json!({ "Status": "Enabled" });
        rules.push(json!({
            "Id": "old-versions", "Status": "Enabled",
            "NoncurrentVersionExpiration": { "NoncurrentDays": OUTPUT_EXPIRY_DAYS }
        }));
    }
    props["LifecycleConfiguration"] = json!({ "Rules": rules });
    json!({ "Type": "AWS::S3::Bucket", "Properties": props })
}

/// Every request to the bucket over plain HTTP is refused, whoever makes it.
fn tls_only_policy() -> Value {
    json!({
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": { "Ref": "Bucket" },
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "TlsOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn(""), bucket_arn("/*")],
                    "Condition": { "Bool": { "aws:SecureTransport": "false" } }
                }]
            }
        }
    })
}

/// The bucket's ARN followed by `suffix` (`/nixl/scripts/*`).
fn bucket_arn(suffix: &str) -> Value {
    if suffix.is_empty() {
        return json!({ "Fn::GetAtt": ["Bucket", "Arn"] });
    }
    json!({ "Fn::Join": ["", [{ "Fn::GetAtt": ["Bucket", "Arn"] }, suffix]] })
}

/// What the SSM agent needs to take commands and report (AmazonSSMManagedInstanceCore without
/// `ssm:GetParameter(s)`, which would read every parameter in the account).
pub const SSM_AGENT_ACTIONS: &[&str] = &[
    "ssm:DescribeAssociation",
    "ssm:DescribeDocument",
    "ssm:GetDeployablePatchSnapshotForInstance",
    "ssm:GetDocument",
    "ssm:GetManifest",
    "ssm:ListAssociations",
    "ssm:ListInstanceAssociations",
    "ssm:PutComplianceItems",
    "ssm:PutConfigurePackageResult",
    "ssm:PutInventory",
    "ssm:UpdateAssociationStatus",
    "ssm:UpdateInstanceAssociationStatus",
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
];

/// The parameters a node may read: its stack's secrets (`/nixl/<stack>/secrets/*`), no other.
pub fn secrets_arn(stack: &Stack) -> Value {
    let path = super::secrets::prefix(&stack.name);
    json!({ "Fn::Sub": format!("arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{path}/*") })
}

/// The node role: the SSM agent's calls, read of the scripts nixl uploads and of the stack's
/// secrets, write of command output and fetched files only. A node cannot change what root runs
/// on it or on its peer, nor read another parameter of the account.
fn role(stack: &Stack, tags: &Value) -> Value {
    let scripts = format!("/{SCRIPTS_PREFIX}/*");
    let output = format!("/{OUTPUT_PREFIX}/*");
    let fetched = format!("/{FETCH_PREFIX}/*");
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{ "Effect": "Allow", "Principal": { "Service": "ec2.amazonaws.com" }, "Action": "sts:AssumeRole" }]
            },
            "Policies": [
                {
                    "PolicyName": "ssm-agent",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{ "Sid": "SsmAgent", "Effect": "Allow", "Action": SSM_AGENT_ACTIONS, "Resource": "*" }]
                    }
                },
                {
                    "PolicyName": "bucket-prefixes",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            { "Sid": "ReadScripts", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": bucket_arn(&scripts) },
                            {
                                "Sid": "WriteOutput",
                                "Effect": "Allow",
                                "Action": ["s3:PutObject", "s3:PutObjectAcl"],
                                "Resource": [bucket_arn(&output), bucket_arn(&fetched)]
                            },
                            {
                                "Sid": "BucketForOutput",
                                "Effect": "Allow",
                                "Action": ["s3:GetBucketLocation", "s3:GetEncryptionConfiguration"],
                                "Resource": bucket_arn("")
                            }
                        ]
                    }
                },
                {
                    "PolicyName": "stack-secrets",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Sid": "ReadTheStacksSecrets",
                            "Effect": "Allow",
                            "Action": "ssm:GetParameter",
                            "Resource": secrets_arn(stack)
                        }]
                    }
                }
            ],
            "Tags": tags,
        }
    })
}

/// The template as CloudFormation receives it, stable for hashing and diffing.
pub fn template_body(stack: &Stack) -> String {
    serde_json::to_string_pretty(&template(stack)).expect("template serialises")
}

/// Prefix of the state attributes that record each template resource's hash,
/// so an offline plan can say which resources a change set will touch.
pub const RESOURCE_HASH_PREFIX: &str = "template:";

/// Each resource of the template with the hash of its definition.
pub fn resource_hashes(stack: &Stack) -> std::collections::BTreeMap<String, String> {
    let t = template(stack);
    t["Resources"]
        .as_object()
        .map(|r| r.iter().map(|(k, v)| (k.clone(), crate::state::content_hash(v))).collect())
        .unwrap_or_default()
}

/// What a change set will do, from the hashes recorded at the last apply: `+ SshIngress, ~ Bucket`.
/// Nothing when the last apply recorded no hashes (a state of an older nixl).
pub fn changes(stack: &Stack, recorded: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let old: std::collections::BTreeMap<&str, &String> =
        recorded.iter().filter_map(|(k, v)| Some((k.strip_prefix(RESOURCE_HASH_PREFIX)?, v))).collect();
    if old.is_empty() {
        return vec![];
    }
    let new = resource_hashes(stack);
    let mut out = vec![];
    for (k, h) in &new {
        match old.get(k.as_str()) {
            None => out.push(format!("+ {k}")),
            Some(o) if *o != h => out.push(format!("~ {k}")),
            _ => {}
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(**k)) {
        out.push(format!("- {k}"));
    }
    out
}
