//! One integration-test binary (the AWS SDK makes each binary expensive to link):
//! golden diagnostics, conformance with the seed's plans, properties, CLI behaviour.

mod support;

mod cli;
mod conformance;
mod golden;
mod local;
mod plan;
mod props;
mod results;
