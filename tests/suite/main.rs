//! One integration-test binary (the AWS SDK makes each binary expensive to link):
//! golden diagnostics, conformance with the seed's plans, properties, CLI behaviour.

mod moto;
mod support;

mod auth_proxy;
mod aws;
mod aws_refresh;
mod aws_regions;
mod aws_secrets;
mod aws_sets;
mod aws_spot;
mod cli;
mod conformance;
mod designs;
mod golden;
mod kv_guards;
mod local;
mod lsp;
mod lsp_process;
mod mlflow;
mod node_sets;
mod plan;
mod props;
mod render_one;
mod replicates;
mod results;
mod runtime;
mod saturation;
mod secrets;
mod shell_props;
mod slo_world;
mod ssm_agent;
mod tools_output;
mod topology;
mod transport_guards;
mod vllm_world;
