//! Every genuine output in `../shared/fixtures/tool-outputs/` of a tool in
//! std/tools, read by that tool's parser: one test per file, asserting the
//! figures its SOURCES.md gives (converted to the parser's units: fabtests'
//! MB/s and ucx_perftest's MiB/s become GB/s), or the failure it says the run was.

use nixl::results::tools::{parse, Figures, ParseError, ToolParser};

fn read(parser: ToolParser, name: &str) -> Result<Figures, ParseError> {
    let path = crate::support::fixture(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(parser, &raw)
}

fn figures(parser: ToolParser, name: &str) -> Figures {
    read(parser, name).unwrap_or_else(|e| panic!("{name}: {e}\n{}", e.tail()))
}

fn failure(parser: ToolParser, name: &str) -> ParseError {
    match read(parser, name) {
        Ok(f) => panic!("{name} parsed, but the run failed: {f:?}"),
        Err(e) => e,
    }
}

/// `name` is `want`, to the last printed digit (units converted by a power of ten).
#[track_caller]
fn is(f: &Figures, name: &str, want: f64) {
    let got = *f.get(name).unwrap_or_else(|| panic!("no `{name}` in {:?}", f.keys().collect::<Vec<_>>()));
    assert!((got - want).abs() <= 1e-9 * want.abs().max(1e-12), "{name}: got {got}, want {want}");
}

/// fabtests print MB/s (10^6 bytes per second); the figures are GB/s.
fn mb_s(v: f64) -> f64 {
    v / 1000.0
}

const MIB: f64 = 1048576.0;

// ---- fabtests -------------------------------------------------------------------

#[test]
fn fi_rma_bw_efa_gdr_write_all_sizes() {
    let f = figures(ToolParser::Fabtests, "fabtests/fi_rma_bw-efa-gdr-write-100g-lequn-blog.txt");
    is(&f, "rows", 46.0);
    is(&f, "bandwidth_gb_s_1b", mb_s(0.75));
    is(&f, "peak_bandwidth_gb_s", mb_s(11843.86));
    is(&f, "peak_size_bytes", 768.0 * 1024.0);
    is(&f, "bandwidth_gb_s_768kb", mb_s(11843.86));
    is(&f, "bandwidth_gb_s_8mb", mb_s(10504.60));
    is(&f, "latency_us_8mb", 798.57);
    // The last row, unsuffixed: 8m, 200 iterations, 1.5g in total.
    is(&f, "size_bytes", 8.0 * MIB);
    is(&f, "latency_us", 798.57);
    is(&f, "iterations", 200.0);
    is(&f, "total_bytes", (1.5 * 1024.0 * MIB).round());
}

#[test]
fn fi_rdm_tagged_bw_excerpt_with_source_address() {
    let f = figures(ToolParser::Fabtests, "fabtests/fi_rdm_tagged_bw-efa-c5n18xl-libfabric5694-excerpt.txt");
    is(&f, "rows", 8.0);
    is(&f, "peak_bandwidth_gb_s", mb_s(6899.89));
    is(&f, "peak_size_bytes", 1.5 * MIB);
    is(&f, "bandwidth_gb_s_1536kb", mb_s(6899.89));
    is(&f, "bandwidth_gb_s_64b", mb_s(42.74));
    is(&f, "latency_us_64b", 1.50);
}

#[test]
fn fi_pingpong_efa_test_reads_the_client_table() {
    let f = figures(ToolParser::Fabtests, "fabtests/fi_pingpong-efa_test.sh-localhost-server-client.txt");
    // Server log, then client log: the client's table is the result.
    is(&f, "rows", 6.0);
    is(&f, "bandwidth_gb_s_1mb", mb_s(15500.01));
    is(&f, "latency_us_1mb", 67.65);
    is(&f, "latency_us_64b", 803.75);
    is(&f, "bandwidth_gb_s", mb_s(15500.01));
}

#[test]
fn fi_pingpong_p4d_first_row_is_warm_up() {
    let f = figures(ToolParser::Fabtests, "fabtests/fi_pingpong-efa_test.sh-p4d.txt");
    is(&f, "rows", 6.0);
    is(&f, "latency_us_64b", 1579.10);
    is(&f, "bandwidth_gb_s_1mb", mb_s(2614.25));
    is(&f, "latency_us_1mb", 401.10);
}

#[test]
fn fi_pingpong_header_starting_with_a_space() {
    let f = figures(ToolParser::Fabtests, "fabtests/fi_pingpong-e-rdm-p-efa-server-libfabric1.18-magiccastle331.txt");
    is(&f, "rows", 6.0);
    is(&f, "bandwidth_gb_s_1mb", mb_s(2185.67));
    is(&f, "latency_us_1mb", 479.75);
    is(&f, "latency_us", 479.75);
}

// ---- nixlbench ------------------------------------------------------------------

#[test]
fn nixlbench_write_then_read_tables() {
    let f = figures(ToolParser::Nixlbench, "nixlbench/issue1695-ucx-vram-h200-cx7-write-read.txt");
    is(&f, "tables", 2.0);
    is(&f, "write_rows", 12.0);
    is(&f, "read_rows", 12.0);
    is(&f, "write_bandwidth_gb_s_2mb", 1.005530);
    is(&f, "write_latency_us_2mb", 2085.6);
    is(&f, "read_bandwidth_gb_s_1mb", 0.262022);
    is(&f, "read_tx_p99_us", 8415.0);
    // The last table (READ) unsuffixed; its last row is 8 MiB.
    is(&f, "size_bytes", 8.0 * MIB);
    is(&f, "bandwidth_gb_s", 1.018200);
    is(&f, "latency_us", 8238.7);
    is(&f, "latency_us_1mb", 4001.9);
    is(&f, "batch_size", 1.0);
}

#[test]
fn nixlbench_storage_backend_with_trailing_spaces() {
    let f = figures(ToolParser::Nixlbench, "nixlbench/posix-aio-dram-storage-nixlbench101.txt");
    is(&f, "rows", 15.0);
    is(&f, "peak_bandwidth_gb_s", 25.946696);
    is(&f, "peak_size_bytes", 4.0 * MIB);
    is(&f, "bandwidth_gb_s_64mb", 4.926833);
    is(&f, "latency_us_64mb", 13621.1);
    is(&f, "tx_p99_us", 20271.0);
}

#[test]
fn nixlbench_timestamped_ci_log_has_one_row() {
    let f = figures(ToolParser::Nixlbench, "nixlbench/ci-jenkins-timestamped-ucx-dram-issue1999-excerpt.log");
    is(&f, "rows", 1.0);
    is(&f, "size_bytes", 16384.0);
    is(&f, "batch_size", 4.0);
    is(&f, "bandwidth_gb_s", 4.524677);
    is(&f, "latency_us", 3.6);
}

#[test]
fn nixlbench_legacy_column_order() {
    let f = figures(ToolParser::Nixlbench, "nixlbench/legacy-format-2025-04-mpirun-pr115-excerpt.txt");
    is(&f, "rows", 7.0);
    is(&f, "bandwidth_gb_s_4kb", 1.31554);
    is(&f, "latency_us_4kb", 3.11355);
    is(&f, "bandwidth_gb_s_256kb", 84.4766);
    is(&f, "batch_size", 64.0);
}

#[test]
fn nixlbench_header_then_row_without_rule() {
    let f = figures(ToolParser::Nixlbench, "nixlbench/libfabric-efa-p5en-dram-single-row-trimmed.txt");
    is(&f, "rows", 1.0);
    is(&f, "size_bytes", MIB);
    is(&f, "batch_size", 1.0);
    is(&f, "bandwidth_gb_s", 58.508164);
    is(&f, "latency_us", 17.9);
}

// ---- kvbench --------------------------------------------------------------------

#[track_caller]
fn kvbench_plan(name: &str, requests: f64, pp: f64, batch: f64, block: f64) {
    let f = figures(ToolParser::Kvbench, name);
    is(&f, "isl_tokens", 10000.0);
    is(&f, "page_size_tokens", 256.0);
    is(&f, "requests", requests);
    is(&f, "tp", 1.0);
    is(&f, "pp", pp);
    is(&f, "plan_start_batch_size", batch);
    is(&f, "plan_max_batch_size", batch);
    is(&f, "plan_start_block_size_bytes", block);
    is(&f, "plan_max_block_size_bytes", block);
}

#[test]
fn kvbench_plan_block_tp1_pp16() {
    kvbench_plan("kvbench/plan-deepseek-r1-block-tp1-pp16-readme.txt", 10.0, 16.0, 5958.0, 589824.0);
}

#[test]
fn kvbench_plan_layer_tp1_pp16() {
    kvbench_plan("kvbench/plan-deepseek-r1-layer-tp1-pp16-readme.txt", 10.0, 16.0, 23829.0, 147456.0);
}

#[test]
fn kvbench_plan_with_pp_and_requests_overridden() {
    // The command line above the banner says `--pp 32 --num_requests 100`: the banner is what is read.
    kvbench_plan("kvbench/plan-deepseek-r1-block-override-pp32-readme.txt", 100.0, 32.0, 119141.0, 294912.0);
}

// ---- ucx_perftest ---------------------------------------------------------------

#[test]
fn ucx_perftest_tag_bw_over_srd() {
    let f = figures(ToolParser::UcxPerftest, "ucx_perftest/tag_bw-cuda-100MiB-efa-srd-g7e.txt");
    is(&f, "iterations", 10.0);
    is(&f, "overhead_us", 2202.916);
    is(&f, "bandwidth_gb_s", 45394.37 * MIB / 1e9);
    is(&f, "msg_rate_per_s", 454.0);
    assert!(!f.contains_key("latency_us"), "a bw test prints overhead, not latency");
}

#[test]
fn ucx_perftest_tag_bw_over_tcp() {
    let f = figures(ToolParser::UcxPerftest, "ucx_perftest/tag_bw-cuda-100MiB-tcp-only-g7e.txt");
    is(&f, "overhead_us", 189482.403);
    is(&f, "bandwidth_gb_s", 527.75 * MIB / 1e9);
    is(&f, "msg_rate_per_s", 5.0);
}

#[test]
fn ucx_perftest_with_warn_lines_in_the_table() {
    let f = figures(ToolParser::UcxPerftest, "ucx_perftest/tag_bw-host-rc-mlx5-with-warn-lines.txt");
    is(&f, "bandwidth_gb_s", 11683.30 * MIB / 1e9);
    is(&f, "overhead_us", 8162.713);
}

#[test]
fn ucx_perftest_without_final_line_is_not_a_result() {
    let e = failure(ToolParser::UcxPerftest, "ucx_perftest/ucp_get-rocm-1GiB-PROTO_INFO-no-final-line.txt");
    assert!(matches!(e, ParseError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("Final:"), "{e}");
    // The tail shows how far it got: 190 iterations, 26975.44 MB/s.
    assert!(e.tail().lines().last().unwrap().contains("190") && e.tail().contains("26975.44"), "{}", e.tail());
}

// ---- iperf3 ---------------------------------------------------------------------

#[test]
fn iperf3_sent_and_received_differ() {
    let f = figures(ToolParser::Iperf3, "iperf3/iperf3.9-n10K-wan-sum_received-tiny.json");
    is(&f, "runs", 1.0);
    is(&f, "streams", 1.0);
    is(&f, "sent_gbit_s", 18435078.343252763 / 1e9);
    is(&f, "received_gbit_s", 267428.250386254 / 1e9);
    is(&f, "bandwidth_gb_s", 267428.250386254 / 8e9);
    is(&f, "received_gbit_s_p1", 267428.250386254 / 1e9);
    assert!(f["sent_gbit_s"] / f["received_gbit_s"] > 68.0);
}

#[test]
fn iperf3_3_6_without_sender_fields_received_nothing() {
    let f = figures(ToolParser::Iperf3, "iperf3/iperf3.6-n10K-wan-no-sender-field-receiver-zero.json");
    assert_eq!(f["received_gbit_s"], 0.0);
    assert_eq!(f["bandwidth_gb_s"], 0.0);
    is(&f, "sent_gbit_s", 6821690.41981619 / 1e9);
}

// ---- nccl-tests -----------------------------------------------------------------

#[test]
fn nccl_all_reduce_mpirun_prefixed_with_info_lines() {
    let f = figures(ToolParser::NcclTests, "nccl-tests/all_reduce_perf-2xT4-efa-aws-ofi-nccl-mpirun-prefixed.txt");
    is(&f, "rows", 31.0);
    is(&f, "busbw_gb_s_0b", 0.0);
    is(&f, "busbw_gb_s_1gb", 3.11);
    is(&f, "busbw_inplace_gb_s_1gb", 3.12);
    is(&f, "avg_busbw_gb_s", 1.15327);
    is(&f, "size_bytes", 1073741824.0);
}

#[test]
fn nccl_all_reduce_16_ranks_two_nodes() {
    let f = figures(ToolParser::NcclTests, "nccl-tests/all_reduce_perf-16xH100-2node-k8s-mpi-launcher.txt");
    is(&f, "rows", 5.0);
    is(&f, "busbw_gb_s_512mb", 193.50);
    is(&f, "busbw_gb_s", 196.52);
    is(&f, "busbw_inplace_gb_s", 196.51);
    is(&f, "busbw_gb_s_8gb", 196.52);
    is(&f, "algbw_gb_s", 104.81);
    is(&f, "time_us", 81958.0);
    is(&f, "avg_busbw_gb_s", 194.675);
}

#[test]
fn nccl_all_reduce_2_18_2_with_version_lines() {
    let f = figures(ToolParser::NcclTests, "nccl-tests/all_reduce_perf-v2.18.2-2xGH200-srun-cscs-docs.txt");
    is(&f, "rows", 8.0);
    is(&f, "busbw_gb_s_1mb", 3.09);
    is(&f, "busbw_gb_s_128mb", 22.86);
    is(&f, "busbw_inplace_gb_s_128mb", 22.88);
    is(&f, "avg_busbw_gb_s", 14.9966);
}

#[test]
fn nccl_wrong_values_fail_the_run() {
    let e = failure(ToolParser::NcclTests, "nccl-tests/all_reduce_perf-v2.17.8-wrong-values-FAILED-nccltests369.txt");
    assert!(matches!(&e, ParseError::ToolFailed { reason, .. } if reason == "wrong values at 1mb"), "{e:?}");
    assert!(e.tail().contains("Out of bounds values : 4 FAILED"), "{}", e.tail());
}

#[test]
fn nccl_cuda_busy_fails_without_a_table() {
    let e = failure(ToolParser::NcclTests, "nccl-tests/all_reduce_perf-v2.17.8-cuda-busy-failure-nccltests369.txt");
    assert!(matches!(&e, ParseError::ToolFailed { reason, .. } if reason.contains("busy or unavailable")), "{e:?}");
}

// ---- nvidia-smi -----------------------------------------------------------------

#[test]
fn nvidia_smi_plain_table_l40s() {
    let f = figures(ToolParser::NvidiaSmi, "nvidia-smi/nvidia-smi-plain-g6e.2xlarge-1xL40S.txt");
    is(&f, "gpus", 1.0);
    is(&f, "driver_version_major", 560.0);
    is(&f, "cuda_version", 12.6);
    is(&f, "gpu0_memory_used_mib", 37503.0);
    is(&f, "gpu0_memory_total_mib", 46068.0);
    is(&f, "gpu0_util_pct", 64.0);
    is(&f, "gpu0_power_w", 201.0);
    is(&f, "gpu0_power_cap_w", 350.0);
    is(&f, "gpu0_temp_c", 33.0);
}

#[test]
fn nvidia_smi_csv_two_a6000() {
    let f = figures(ToolParser::NvidiaSmiCsv, "nvidia-smi/nvidia-smi-query-csv-2xA6000-index-name-mem-util.csv.txt");
    is(&f, "gpus", 2.0);
    is(&f, "gpu0_memory_total_mib", 49140.0);
    is(&f, "gpu1_memory_total_mib", 49140.0);
    is(&f, "gpu0_memory_used_mib", 299.0);
    is(&f, "gpu1_memory_used_mib", 11.0);
    is(&f, "utilization_gpu_pct", 0.0);
}

#[test]
fn nvidia_smi_csv_a100_with_driver() {
    let f = figures(ToolParser::NvidiaSmiCsv, "nvidia-smi/nvidia-smi-query-csv-A100-name-memtotal-driver-excerpt6of8.csv.txt");
    is(&f, "gpus", 6.0);
    is(&f, "memory_total_mib", 81920.0);
    is(&f, "driver_version_major", 570.0);
}

#[test]
fn nvidia_smi_topo_eight_gpus_two_nics() {
    let f = figures(ToolParser::NvidiaSmiTopo, "nvidia-smi/topo-m-8xRTX4090-2NIC-go-gpuallocator17.txt");
    is(&f, "gpus", 8.0);
    is(&f, "nics", 2.0);
    is(&f, "gpu_gpu_links_sys", 28.0);
    is(&f, "gpu_nic_links_sys", 14.0);
    is(&f, "gpu_nic_links_phb", 2.0);
    is(&f, "nic_nic_links_pix", 1.0);
    assert_eq!(f["gpudirect_rdma_likely"], 0.0);
    is(&f, "gpu0_affinity_cpus", 112.0);
    is(&f, "gpu4_numa_node", 1.0);
    is(&f, "gpu7_affinity_cpus", 112.0);
}

#[test]
fn nvidia_smi_topo_two_gpus_with_legend() {
    let f = figures(ToolParser::NvidiaSmiTopo, "nvidia-smi/topo-m-2xRTX5090-PHB-legend-club3090-1133.txt");
    is(&f, "gpus", 2.0);
    assert_eq!(f["nics"], 0.0);
    is(&f, "gpu_gpu_links_phb", 1.0);
    is(&f, "gpu0_affinity_cpus", 64.0);
    assert_eq!(f["gpu1_numa_node"], 0.0);
    assert!(!f.contains_key("gpudirect_rdma_likely"), "no NIC, no verdict");
}

// ---- fi_info --------------------------------------------------------------------

#[test]
fn fi_info_efa_direct_g7e() {
    let f = figures(ToolParser::FiInfo, "fi_info/fi_info-p-efa-g7e-efa-direct-v206.txt");
    is(&f, "entries", 3.0);
    is(&f, "rdm_entries", 2.0);
    is(&f, "dgram_entries", 1.0);
    is(&f, "devices", 1.0);
    is(&f, "provider_version_major", 206.0);
    assert_eq!(f["provider_version_minor"], 0.0);
    is(&f, "efa_provider_available", 1.0);
}

#[test]
fn fi_info_short_rdm_and_dgram() {
    let f = figures(ToolParser::FiInfo, "fi_info/fi_info-p-efa-short-v120-rdm-dgrm.txt");
    is(&f, "entries", 2.0);
    is(&f, "rdm_entries", 1.0);
    is(&f, "dgram_entries", 1.0);
    is(&f, "devices", 1.0);
    is(&f, "provider_version_major", 120.0);
}

#[test]
fn fi_info_four_nics_p4d() {
    let f = figures(ToolParser::FiInfo, "fi_info/fi_info-p-efa-t-rdm-p4d-4nic-v111.20.txt");
    is(&f, "entries", 4.0);
    is(&f, "rdm_entries", 4.0);
    is(&f, "devices", 4.0);
    is(&f, "provider_version_major", 111.0);
    is(&f, "provider_version_minor", 20.0);
}

#[test]
fn fi_info_verbose_yaml() {
    let f = figures(ToolParser::FiInfo, "fi_info/fi_info-verbose-efa-first-entry-libfabric2.0-lequn-blog.yaml");
    is(&f, "entries", 1.0);
    is(&f, "rdm_entries", 1.0);
    is(&f, "devices", 1.0);
    is(&f, "provider_version_major", 200.0);
    is(&f, "api_version_major", 2.0);
    is(&f, "mtu_bytes", 8760.0);
    is(&f, "link_speed_gbit_s", 100.0);
    is(&f, "mr_hmem", 1.0);
    is(&f, "efa_provider_available", 1.0);
}

#[test]
fn fi_info_without_efa_fails() {
    let e = failure(ToolParser::FiInfo, "fi_info/fi_info-no-efa-failure.txt");
    assert!(matches!(&e, ParseError::ToolFailed { reason, .. } if reason.contains("-61")), "{e:?}");
    assert_eq!(e.tail(), "fi_getinfo: -61");
}

// ---- Failures every parser shares -------------------------------------------------

#[test]
fn empty_output_fails_for_every_parser() {
    for p in ToolParser::NAMES.iter().filter_map(|n| ToolParser::from_symbol(n)) {
        assert_eq!(parse(p, b""), Err(ParseError::NoOutput), "{p}");
        assert_eq!(parse(p, b"\n  \n"), Err(ParseError::NoOutput), "{p}");
    }
}

#[test]
fn iperf3_refused_connection_fails_with_its_error() {
    // iperf3 -J exits 0 here and writes only this document.
    let raw = br#"{"start": {"connected": [], "version": "iperf 3.9", "system_info": "Linux"}, "intervals": [], "end": {}, "error": "unable to connect to server: Connection refused"}"#;
    let e = parse(ToolParser::Iperf3, raw).unwrap_err();
    assert!(matches!(&e, ParseError::ToolFailed { reason, .. } if reason.ends_with("Connection refused")), "{e:?}");
}

#[test]
fn other_text_is_not_a_table() {
    let e = parse(ToolParser::Fabtests, b"bash: /opt/amazon/efa/bin/fi_rdm_bw: No such file or directory\n").unwrap_err();
    assert!(matches!(e, ParseError::NotFound { .. }), "{e:?}");
    assert!(e.tail().contains("No such file"), "{}", e.tail());
}

// ---- A tool step through `nixl apply`: no result without figures ----------------

mod steps {
    use crate::local::{copy_examples, text};
    use crate::support::{fixture, nixl};
    use std::path::{Path, PathBuf};
    use std::process::Output;

    /// The local demo with its baseline tool replaced by `tool`, applied up to the baseline layer.
    fn apply_with_tool(name: &str, tool: &str) -> (PathBuf, Output) {
        let dir = copy_examples(name);
        let file = dir.join("local-demo.nixl");
        let text = std::fs::read_to_string(&file).unwrap();
        let start = text.find("tool clock_check {").unwrap();
        let end = start + text[start..].find("\n}\n").unwrap() + 3;
        std::fs::write(&file, format!("{}{tool}\n{}", &text[..start], &text[end..])).unwrap();
        let out = nixl()
            .current_dir(&dir)
            .args(["apply", "local-demo.nixl", "--provider", "local", "--auto-approve", "--target", "L0-Baseline"])
            .output()
            .unwrap();
        (dir, out)
    }

    fn tool(run: &str, extra: &str) -> String {
        format!(
            "tool clock_check {{\n  kind     = baseline\n  nodes    = 1\n  slug     = \"clock-check\"\n  duration = 5s\n  run      = {run:?}\n{extra}}}\n"
        )
    }

    fn destroy(dir: &Path) {
        let _ = nixl().current_dir(dir).args(["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output();
    }

    fn result(dir: &Path) -> Option<serde_json::Value> {
        let b = std::fs::read(dir.join(".nixl/results/demo/demo-baseline-clock-check.json")).ok()?;
        serde_json::from_slice(&b).ok()
    }

    #[track_caller]
    fn failed(dir: &Path, out: &Output, says: &[&str]) {
        let t = text(out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains("0 done") || t.contains("1 failed"), "{t}");
        for s in says {
            assert!(t.contains(s), "missing {s:?} in:\n{t}");
        }
        assert!(result(dir).is_none(), "a failed step stores no result");
    }

    #[test]
    fn an_empty_output_fails_the_step() {
        let (dir, out) = apply_with_tool("tool-empty", &tool(": > {out}", ""));
        failed(&dir, &out, &["the tool wrote no output"]);
        destroy(&dir);
    }

    #[test]
    fn an_output_that_cannot_be_fetched_fails_the_step() {
        let (dir, out) = apply_with_tool("tool-nofetch", &tool("echo wrote elsewhere", ""));
        failed(&dir, &out, &["could not be fetched"]);
        destroy(&dir);
    }

    #[test]
    fn a_missing_declared_metric_fails_the_step_with_the_output_tail() {
        // Without a parser, `name: value` lines are figures too.
        let run = "echo epoch_s: 12 > {out}";
        let (dir, out) = apply_with_tool("tool-missing", &tool(run, "  metrics  = [\"epoch_s\", \"latency_us\"]\n"));
        failed(&dir, &out, &["lacks the declared metric latency_us", "| epoch_s: 12"]);
        destroy(&dir);
    }

    #[test]
    fn a_parser_reads_a_genuine_output_into_the_result() {
        let src = fixture("fabtests/fi_pingpong-efa_test.sh-p4d.txt");
        let run = format!("cp {} {{out}}", src.display());
        let (dir, out) = apply_with_tool(
            "tool-parsed",
            &tool(&run, "  parser   = \"fabtests\"\n  metrics  = [\"latency_us\", \"bandwidth_gb_s\"]\n"),
        );
        assert!(out.status.success(), "{}", text(&out));
        let r = result(&dir).expect("a result");
        assert_eq!(r["metrics"]["latency_us_64b"], 1579.1);
        assert_eq!(r["metrics"]["bandwidth_gb_s_1mb"], 2.61425);
        destroy(&dir);
    }

    #[test]
    fn a_tool_reporting_failure_fails_the_step_with_its_reason() {
        let src = fixture("nccl-tests/all_reduce_perf-v2.17.8-wrong-values-FAILED-nccltests369.txt");
        let run = format!("cp {} {{out}}", src.display());
        let (dir, out) = apply_with_tool("tool-nccl-failed", &tool(&run, "  parser   = \"nccl_tests\"\n"));
        failed(&dir, &out, &["the tool reported a failure: wrong values at 1mb", "| # Out of bounds values : 4 FAILED"]);
        destroy(&dir);
    }
}
