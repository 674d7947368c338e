//! The CloudFormation template for a `stack` block's base resources: security
//! group (all traffic between the nodes, as EFA needs; SSH only from a given
//! CIDR), IAM role and instance profile (SSM core, the bucket only), the bucket
//! (public access blocked, encrypted) and the cluster placement group. Nodes
//! are not in it: they are launched with RunInstances so a capacity error can
//! move to the next zone in seconds instead of a stack rollback.

use crate::check::model::Stack;
use serde_json::{json, Map, Value};

/// Output names the provider reads back.
pub const OUT_SECURITY_GROUP: &str = "SecurityGroupId";
pub const OUT_INSTANCE_PROFILE: &str = "InstanceProfileArn";
pub const OUT_BUCKET: &str = "BucketName";
pub const OUT_PLACEMENT_GROUP: &str = "PlacementGroupName";

/// The tag every resource nixl creates carries, so nothing it pays for can hide.
pub const STACK_TAG: &str = "nixl:stack";

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
    if let Some(cidr) = &stack.ssh_cidr {
        res.insert(
            "SshIngress".into(),
            json!({
                "Type": "AWS::EC2::SecurityGroupIngress",
                "Properties": {
                    "GroupId": { "Fn::GetAtt": ["SecurityGroup", "GroupId"] },
                    "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": cidr,
                }
            }),
        );
    }
    res.insert(
        "Bucket".into(),
        json!({
            "Type": "AWS::S3::Bucket",
            "Properties": {
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
            }
        }),
    );
    res.insert(
        "Role".into(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{ "Effect": "Allow", "Principal": { "Service": "ec2.amazonaws.com" }, "Action": "sts:AssumeRole" }]
                },
                "ManagedPolicyArns": ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"],
                "Policies": [{
                    "PolicyName": "bucket-read-write",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            { "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": { "Fn::GetAtt": ["Bucket", "Arn"] } },
                            {
                                "Effect": "Allow",
                                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                                "Resource": { "Fn::Join": ["", [{ "Fn::GetAtt": ["Bucket", "Arn"] }, "/*"]] }
                            }
                        ]
                    }
                }],
                "Tags": tags,
            }
        }),
    );
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
