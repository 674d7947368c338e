//! `fi_info`: the short form (`provider: efa` then indented `fabric`,
//! `domain`, `version`, `type`, `protocol`, one block per endpoint) or the
//! verbose YAML (`fi_info:` blocks with `fi_ep_attr`, `fi_domain_attr`,
//! `fi_fabric_attr`, `nic`). `fi_getinfo: -61` (ENODATA) means no provider
//! matched: with `-p efa`, no usable EFA device. Lines after the blocks (the
//! `ibv_devices` std/tools appends) are ignored.

use super::{num, Figures, ParseError};
use std::collections::BTreeSet;

pub(super) fn parse(lines: &[String], raw: &[u8]) -> Result<Figures, ParseError> {
    if let Some(l) = lines.iter().find(|l| l.trim_start().starts_with("fi_getinfo:")) {
        let code = l.split(':').nth(1).map(str::trim).unwrap_or("");
        let why = if code == "-61" { " (no data available: no provider matched)" } else { "" };
        return Err(ParseError::failed(format!("{}{why}", l.trim()), raw));
    }
    let mut entries = 0.0;
    let mut providers = BTreeSet::new();
    let mut devices = BTreeSet::new();
    let mut f = Figures::new();
    let mut section = String::new();
    for l in lines {
        let Some((key, value)) = l.split_once(':') else { continue };
        let (key, value) = (key.trim(), value.trim());
        if value.is_empty() {
            if key == "fi_info" {
                entries += 1.0;
            }
            section = key.to_string();
            continue;
        }
        match (section.as_str(), key) {
            (_, "provider") if !l.starts_with(' ') => {
                entries += 1.0;
                providers.insert(value.to_string());
            }
            (_, "prov_name") => {
                providers.insert(value.to_string());
            }
            (_, "domain") | ("fi_domain_attr", "name") if !value.starts_with("0x") => {
                devices.insert(value.trim_end_matches("-rdm").trim_end_matches("-dgrm").to_string());
            }
            (_, "version") | (_, "prov_version") => version(&mut f, "provider_version", value),
            (_, "api_version") => version(&mut f, "api_version", value),
            (_, "type") if value == "FI_EP_RDM" => count(&mut f, "rdm_entries"),
            (_, "type") if value == "FI_EP_DGRAM" => count(&mut f, "dgram_entries"),
            (_, "type") if value == "FI_EP_MSG" => count(&mut f, "msg_entries"),
            ("fi_link_attr", "mtu") => insert(&mut f, "mtu_bytes", num(value)),
            ("fi_link_attr", "speed") => insert(&mut f, "link_speed_gbit_s", num(value).map(|v| v / 1e9)),
            (_, "mr_mode") => {
                f.insert("mr_hmem".into(), if value.contains("FI_MR_HMEM") { 1.0 } else { 0.0 });
            }
            _ => {}
        }
    }
    if entries == 0.0 {
        return Err(ParseError::not_found("fi_info provider entry", raw));
    }
    f.insert("entries".into(), entries);
    f.insert("devices".into(), devices.len() as f64);
    f.insert("efa_provider_available".into(), if providers.contains("efa") { 1.0 } else { 0.0 });
    Ok(f)
}

fn count(f: &mut Figures, name: &str) {
    *f.entry(name.to_string()).or_insert(0.0) += 1.0;
}

fn insert(f: &mut Figures, name: &str, v: Option<f64>) {
    if let Some(v) = v {
        f.insert(name.into(), v);
    }
}

/// `111.20` gives major 111 and minor 20 (as a decimal, 111.2 would say another version).
fn version(f: &mut Figures, name: &str, value: &str) {
    let mut parts = value.split('.');
    insert(f, &format!("{name}_major"), parts.next().and_then(num));
    insert(f, &format!("{name}_minor"), parts.next().and_then(num));
}
