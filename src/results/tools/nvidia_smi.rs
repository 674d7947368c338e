//! nvidia-smi in the four forms std/tools and people run: the plain table,
//! `--query-gpu=... --format=csv`, `dmon` and `topo -m`. Per-GPU figures are
//! suffixed `gpu<i>_`; the unsuffixed figure is the mean over the GPUs (and,
//! for dmon, over the samples). Text fields (names, bus ids) are not figures;
//! a driver version gives its major number.

use super::{num, Figures, ParseError};
use std::collections::BTreeMap;

/// Per-GPU figures, GPU index to name to value.
type PerGpu = BTreeMap<u32, BTreeMap<String, Vec<f64>>>;

/// `gpu<i>_<name>` for each GPU (mean of its samples), `<name>` as the mean over GPUs, and `gpus`.
fn per_gpu_figures(per: &PerGpu) -> Figures {
    let mut f = Figures::new();
    let mut all: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (i, m) in per {
        for (name, vs) in m {
            let mean = vs.iter().sum::<f64>() / vs.len() as f64;
            f.insert(format!("gpu{i}_{name}"), mean);
            all.entry(name).or_default().push(mean);
        }
    }
    for (name, vs) in all {
        f.insert(name.to_string(), vs.iter().sum::<f64>() / vs.len() as f64);
    }
    if !per.is_empty() {
        f.insert("gpus".into(), per.len() as f64);
    }
    f
}

fn add(per: &mut PerGpu, gpu: u32, name: impl Into<String>, v: f64) {
    per.entry(gpu).or_default().entry(name.into()).or_default().push(v);
}

/// `560.35.03` gives 560.
fn major(version: &str) -> Option<f64> {
    num(version.trim().split('.').next()?)
}

// ---- The plain table ------------------------------------------------------------

/// The banner (`Driver Version: 560.35.03   CUDA Version: 12.6`) and, per GPU,
/// the second line of its box: temperature, power draw and cap, memory used
/// and total, utilisation.
pub(super) fn parse_table(lines: &[String], raw: &[u8]) -> Result<Figures, ParseError> {
    let mut per = PerGpu::new();
    let mut f = Figures::new();
    let mut index: Option<u32> = None;
    for l in lines {
        if let Some(rest) = l.split("Driver Version:").nth(1) {
            if let Some(v) = rest.split_whitespace().next().and_then(major) {
                f.insert("driver_version_major".into(), v);
            }
            if let Some(v) = l.split("CUDA Version:").nth(1).and_then(|r| r.split_whitespace().next()).and_then(num) {
                f.insert("cuda_version".into(), v);
            }
            continue;
        }
        let cells: Vec<&str> = l.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
        if cells.len() < 3 {
            continue;
        }
        if cells[1].contains("MiB /") {
            if let Some(i) = index.take() {
                gpu_line(&cells, &mut per, i);
            }
        } else {
            index = cells[0].split_whitespace().next().and_then(|t| t.parse().ok());
        }
    }
    if per.is_empty() {
        return Err(ParseError::not_found("GPU in the nvidia-smi table", raw));
    }
    f.extend(per_gpu_figures(&per));
    Ok(f)
}

/// `N/A 33C P0 201W / 350W | 37503MiB / 46068MiB | 64% Default`.
fn gpu_line(cells: &[&str], per: &mut PerGpu, i: u32) {
    for t in cells[0].split_whitespace() {
        if let Some(c) = t.strip_suffix('C').and_then(num) {
            add(per, i, "temp_c", c);
        }
    }
    let watts: Vec<f64> = cells[0].split_whitespace().filter_map(|t| t.strip_suffix('W').and_then(num)).collect();
    if let [draw, cap] = watts[..] {
        add(per, i, "power_w", draw);
        add(per, i, "power_cap_w", cap);
    }
    let mib: Vec<f64> = cells[1].split_whitespace().filter_map(|t| t.strip_suffix("MiB").and_then(num)).collect();
    if let [used, total] = mib[..] {
        add(per, i, "memory_used_mib", used);
        add(per, i, "memory_total_mib", total);
    }
    if let Some(u) = cells[2].split_whitespace().next().and_then(|t| t.strip_suffix('%')).and_then(num) {
        add(per, i, "util_pct", u);
    }
}

// ---- --query-gpu CSV ------------------------------------------------------------

/// A header of field names with their units (`memory.total [MiB]`), then one
/// row per GPU (`49140 MiB`). A field is named with `_` for `.` and its unit
/// as suffix: `memory_total_mib`, `utilization_gpu_pct`.
pub(super) fn parse_csv(lines: &[String], raw: &[u8]) -> Result<Figures, ParseError> {
    let mut rows = lines.iter().filter(|l| !l.trim().is_empty());
    let Some(header) = rows.next() else {
        return Err(ParseError::not_found("nvidia-smi CSV header", raw));
    };
    let fields: Vec<(String, &str)> = header.split(',').map(field_name).collect();
    if !fields.iter().any(|(n, _)| n == "index" || n == "name" || n.starts_with("memory")) {
        return Err(ParseError::not_found("nvidia-smi CSV header", raw));
    }
    let mut per = PerGpu::new();
    for (n, row) in rows.enumerate() {
        let cells: Vec<&str> = row.split(',').map(str::trim).collect();
        if cells.len() != fields.len() {
            return Err(ParseError::failed(row.trim(), raw));
        }
        let at = |name: &str| fields.iter().position(|(f, _)| f == name).map(|i| cells[i]);
        let gpu = at("index").and_then(|v| v.parse().ok()).unwrap_or(n as u32);
        for ((name, unit), cell) in fields.iter().zip(&cells) {
            if name == "index" {
                continue;
            }
            if name == "driver_version" {
                if let Some(v) = major(cell) {
                    add(&mut per, gpu, "driver_version_major", v);
                }
                continue;
            }
            let value = cell.strip_suffix(unit).unwrap_or(cell);
            if let Some(v) = num(value) {
                add(&mut per, gpu, unit_suffix(name, unit), v);
            }
        }
    }
    if per.is_empty() {
        return Err(ParseError::not_found("GPU row in the nvidia-smi CSV", raw));
    }
    Ok(per_gpu_figures(&per))
}

/// ` memory.total [MiB]` gives ("memory_total", "MiB").
fn field_name(h: &str) -> (String, &str) {
    let h = h.trim();
    let (name, unit) = match h.split_once(" [") {
        Some((n, u)) => (n, u.trim_end_matches(']')),
        None => (h, ""),
    };
    (name.replace('.', "_"), unit)
}

/// A figure name with its unit: `memory_total` and `MiB` give `memory_total_mib`.
fn unit_suffix(name: &str, unit: &str) -> String {
    let suffix = match unit {
        "" | "-" => return name.to_string(),
        "%" => "pct",
        "MB/s" => "mb_s",
        u => return format!("{name}_{}", u.to_ascii_lowercase()),
    };
    format!("{name}_{suffix}")
}

// ---- dmon -------------------------------------------------------------------------

/// `# gpu pwr gtemp ...`, `# Idx W C ...`, then one line per GPU and second.
pub(super) fn parse_dmon(lines: &[String], raw: &[u8]) -> Result<Figures, ParseError> {
    let mut names: Vec<String> = vec![];
    let mut per = PerGpu::new();
    let mut samples = 0;
    for l in lines {
        let cells: Vec<&str> = l.split_whitespace().collect();
        if cells.first() == Some(&"#") {
            match cells.get(1) {
                Some(&"gpu") => names = cells[2..].iter().map(|s| s.to_string()).collect(),
                Some(&"Idx") if cells.len() == names.len() + 2 => {
                    names = names.iter().zip(&cells[2..]).map(|(n, u)| dmon_name(n, u)).collect();
                }
                _ => {}
            }
            continue;
        }
        if names.is_empty() || cells.len() != names.len() + 1 {
            continue;
        }
        let Ok(gpu) = cells[0].parse::<u32>() else { continue };
        samples += 1;
        for (name, cell) in names.iter().zip(&cells[1..]) {
            if let Some(v) = num(cell) {
                add(&mut per, gpu, name.clone(), v);
            }
        }
    }
    if per.is_empty() {
        return Err(ParseError::not_found("nvidia-smi dmon sample", raw));
    }
    let mut f = per_gpu_figures(&per);
    f.insert("samples".into(), samples as f64);
    Ok(f)
}

/// dmon's short column names with their unit line.
fn dmon_name(name: &str, unit: &str) -> String {
    let known = match name {
        "pwr" => "power_w",
        "gtemp" | "temp" => "gpu_temp_c",
        "mtemp" => "mem_temp_c",
        "sm" => "sm_util_pct",
        "mem" => "mem_util_pct",
        "enc" => "enc_util_pct",
        "dec" => "dec_util_pct",
        "mclk" => "mem_clock_mhz",
        "pclk" => "sm_clock_mhz",
        "fb" => "fb_used_mb",
        "bar1" => "bar1_used_mb",
        "rxpci" => "pcie_rx_mb_s",
        "txpci" => "pcie_tx_mb_s",
        _ => return unit_suffix(name, unit),
    };
    known.to_string()
}

// ---- topo -m ------------------------------------------------------------------------

/// The link kinds of the matrix, nearest first.
const LINKS: &[&str] = &["nvlink", "pix", "pxb", "phb", "node", "sys"];

/// A tab-separated matrix: a header of devices (GPU0.., NIC0..) then CPU
/// Affinity, NUMA Affinity, GPU NUMA ID; one row per device. GPU rows carry the
/// affinities after the links (nvidia-smi pads them with an extra tab); NIC
/// rows do not. Each pair is counted once: `gpu_nic_links_phb`,
/// `gpu_gpu_links_sys`, `nic_nic_links_pix`; `gpudirect_rdma_likely` is 1 when
/// a GPU and a NIC share a PCIe switch (PIX or PXB), 0 when none does, absent
/// without NICs.
pub(super) fn parse_topo(lines: &[String], raw: &[u8]) -> Result<Figures, ParseError> {
    let Some(h) = lines.iter().position(|l| l.starts_with(char::is_whitespace) && l.trim_start().starts_with("GPU0")) else {
        return Err(ParseError::not_found("nvidia-smi topo matrix", raw));
    };
    let devices: Vec<&str> =
        lines[h].split('\t').map(str::trim).filter(|c| !c.is_empty()).take_while(|c| !c.contains("Affinity")).collect();
    let mut f = Figures::new();
    for kind in ["gpu_gpu", "gpu_nic", "nic_nic"] {
        for link in LINKS {
            f.insert(format!("{kind}_links_{link}"), 0.0);
        }
    }
    let class = |d: &str| if d.starts_with("GPU") { "gpu" } else { "nic" };
    for l in &lines[h + 1..] {
        let cells: Vec<&str> = l.split('\t').map(str::trim).collect();
        let Some(r) = devices.iter().position(|d| *d == cells[0]) else { break };
        if cells.len() <= devices.len() {
            return Err(ParseError::failed(l.trim(), raw));
        }
        for (c, cell) in cells[1..=devices.len()].iter().enumerate().skip(r + 1) {
            let link = if cell.starts_with("NV") { "nvlink" } else { &cell.to_ascii_lowercase() };
            let mut pair = [class(devices[r]), class(devices[c])];
            pair.sort();
            *f.entry(format!("{}_{}_links_{link}", pair[0], pair[1])).or_insert(0.0) += 1.0;
        }
        let gpu: Option<u32> = cells[0].strip_prefix("GPU").and_then(|i| i.parse().ok());
        let rest: Vec<&str> = cells[devices.len() + 1..].iter().copied().filter(|c| !c.is_empty()).collect();
        if let (Some(g), Some(cpus)) = (gpu, rest.first()) {
            if let Some(n) = cpu_count(cpus) {
                f.insert(format!("gpu{g}_affinity_cpus"), n);
            }
            if let Some(n) = rest.get(1).and_then(|s| num(s)) {
                f.insert(format!("gpu{g}_numa_node"), n);
            }
        }
    }
    let nics = devices.iter().filter(|d| class(d) == "nic").count();
    f.insert("nics".into(), nics as f64);
    if nics > 0 {
        let near = f["gpu_nic_links_pix"] + f["gpu_nic_links_pxb"];
        f.insert("gpudirect_rdma_likely".into(), if near > 0.0 { 1.0 } else { 0.0 });
    }
    f.insert("gpus".into(), (devices.len() - nics) as f64);
    Ok(f)
}

/// `0-55,112-167` gives 112.
fn cpu_count(s: &str) -> Option<f64> {
    let mut n = 0.0;
    for part in s.split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => num(b)? - num(a)? + 1.0,
            None => {
                num(part)?;
                1.0
            }
        };
    }
    Some(n)
}
