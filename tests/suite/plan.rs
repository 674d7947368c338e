//! Plans of the examples: text and JSON goldens with no state, half done, one pattern changed.

use crate::support::{golden, plan_of, root};
use nixl::plan::{Change, Kind, Plan};
use nixl::state::{ActionRecord, State, Status};

fn plan_with(example: &str, experiment: &str, state: &State) -> (Plan, Option<String>) {
    let loaded = nixl::pipeline::load(&root().join("examples").join(example));
    assert!(!loaded.check.has_errors(), "{:?}", loaded.check.diagnostics);
    let plan = plan_of(&loaded, Some(experiment), state);
    let campaign = loaded.campaign(Some(experiment)).unwrap();
    let reduction = loaded
        .parent(campaign)
        .map(|parent| nixl::design::tables::render_reduction(&nixl::design::tables::reduction(&parent.design, &campaign.design)));
    (plan, reduction)
}

fn record(hash: &str) -> ActionRecord {
    ActionRecord { hash: hash.into(), status: Status::Done, finished_at: None, seconds: None, error: None, set: None }
}

/// A state in which every other pattern, and all infrastructure and setup, is done.
fn half_done(plan: &Plan) -> State {
    let mut s = State::new();
    let mut n = 0;
    for a in &plan.actions {
        let done = match a.kind {
            Kind::Stack | Kind::Nodes | Kind::Setup => true,
            Kind::Pattern | Kind::Step | Kind::Analysis => {
                n += 1;
                n % 2 == 0
            }
            _ => false,
        };
        if done {
            s.actions.insert(a.id.clone(), record(&a.hash.to_string()));
        }
    }
    s
}

/// Everything done, but one pattern ran with other settings.
fn one_changed(plan: &Plan, changed: &str) -> State {
    let mut s = State::new();
    for a in
        plan.actions.iter().filter(|a| !matches!(a.kind, Kind::ServerStart | Kind::ServerStop | Kind::Upload | Kind::Service))
    {
        let hash = if a.id.to_string() == changed { "0123456789abcdef".to_string() } else { a.hash.to_string() };
        s.actions.insert(a.id.clone(), record(&hash));
    }
    s
}

fn check_goldens(example: &str, experiment: &str, changed: &str) {
    let dir = root().join("tests/golden/plan");
    let (fresh, reduction) = plan_with(example, experiment, &State::new());
    golden(&dir.join(format!("{experiment}.txt")), &nixl::plan::view::text(&fresh, reduction.as_deref(), false));
    golden(&dir.join(format!("{experiment}.json")), &nixl::plan::view::json(&fresh));

    let (half, _) = plan_with(example, experiment, &half_done(&fresh));
    golden(&dir.join(format!("{experiment}-half-done.txt")), &nixl::plan::view::text(&half, None, false));
    golden(&dir.join(format!("{experiment}-half-done.json")), &nixl::plan::view::json(&half));
    let runs = |p: &Plan| {
        p.actions
            .iter()
            .filter(|a| matches!(a.kind, Kind::Pattern | Kind::Step | Kind::Analysis) && a.change != Change::NoOp)
            .count()
    };
    // Every other pattern runs, and each analysis done before whose inputs run again.
    let analyses_again = half
        .actions
        .iter()
        .filter(|a| a.kind == Kind::Analysis && a.change == Change::Replace)
        .inspect(|a| assert!(a.deps.iter().any(|&d| half.actions[d].change != Change::NoOp), "{}", a.id))
        .count();
    assert_eq!(runs(&half), runs(&fresh) - runs(&fresh) / 2 + analyses_again);
    assert!(half.actions.iter().all(|a| a.kind != Kind::Stack || a.change == Change::NoOp));

    let (one, _) = plan_with(example, experiment, &one_changed(&fresh, changed));
    golden(&dir.join(format!("{experiment}-one-changed.txt")), &nixl::plan::view::text(&one, None, false));
    golden(&dir.join(format!("{experiment}-one-changed.json")), &nixl::plan::view::json(&one));
    let pending: Vec<(String, Change)> = one
        .actions
        .iter()
        .filter(|a| matches!(a.kind, Kind::Pattern | Kind::Step) && a.change != Change::NoOp)
        .map(|a| (a.id.to_string(), a.change))
        .collect();
    assert_eq!(pending, vec![(changed.to_string(), Change::Replace)]);
    // The analyses that read the changed pattern run again, and only those.
    let index = one.actions.iter().position(|a| a.id.to_string() == changed).unwrap();
    for a in one.actions.iter().filter(|a| a.kind == Kind::Analysis) {
        assert_eq!(a.change != Change::NoOp, a.deps.contains(&index), "{}", a.id);
    }
    // Only the changed pattern's group is launched again.
    assert_eq!(one.summary.launches, 1);
}

#[test]
fn phase1_plans_match_their_goldens() {
    check_goldens("phase1.nixl", "phase1", "p1-efa-12k-c4");
}

#[test]
fn phase2_plans_match_their_goldens() {
    check_goldens("phase2.nixl", "phase2", "p2-tcp-64k-c1");
}

#[test]
fn nothing_to_do_when_everything_is_done() {
    let (fresh, _) = plan_with("phase2.nixl", "phase2", &State::new());
    let mut s = State::new();
    for a in &fresh.actions {
        s.actions.insert(a.id.clone(), record(&a.hash.to_string()));
    }
    let (done, _) = plan_with("phase2.nixl", "phase2", &s);
    assert!(!done.summary.has_changes(), "{:?}", done.summary);
    assert_eq!(done.summary.launches, 0);
    assert!(nixl::plan::view::text(&done, None, false).contains("No changes."));
}

#[test]
fn a_pattern_removed_from_the_file_is_forgotten() {
    let (fresh, _) = plan_with("phase2.nixl", "phase2", &State::new());
    let mut s = State::new();
    s.actions.insert("p2-efa-100k-c1".into(), record("feedfacefeedface"));
    let (p, _) = plan_with("phase2.nixl", "phase2", &s);
    assert_eq!(p.summary.destroy, 1);
    assert_eq!(p.summary.run, fresh.summary.run);
}

/// A child's own design replaces the parent's: the drop is the design's, not the prunes' that
/// ran before it (they removed candidates the new design would not have picked anyway).
#[test]
fn the_reduction_table_credits_a_replaced_design_not_the_prunes_before_it() {
    let text = r#"experiment base {
  factor prompt = [1K, 4K, 12K]
  factor concurrency = [1, 4, 16]
  prune concurrency == 16 and prompt == 12K because "too slow"
  layer "L1" { mode = unified, id = "b-{prompt}-c{concurrency}", design = points((1K, 1), (4K, 1), (4K, 4), (12K, 1), (12K, 4)) }
}
experiment child extends base {
  prune prompt == 4K because "child prune"
  layer "L1" { design = points((1K, 1), (12K, 4)) }
}
"#;
    let loaded = nixl::pipeline::load_text("r.nixl", text, &crate::props::NoFiles);
    assert!(!loaded.check.has_errors(), "{:?}", loaded.check.diagnostics);
    let (parent, child) = (loaded.design(Some("base")).unwrap(), loaded.design(Some("child")).unwrap());
    let r = nixl::design::tables::reduction(parent, child);
    let row = &r.layers[0];
    assert_eq!((row.before, row.after), (5, 2));
    assert_eq!(row.reasons.len(), 1, "{:?}", row.reasons);
    assert!(row.reasons[0].0.starts_with("the design this experiment gives the layer"), "{:?}", row.reasons);
    assert_eq!(row.reasons[0].1, 3);
}

/// `--target` runs what it names and what that truly needs: for an E2E pattern, the
/// infrastructure, the setup, its launch's start and stop; for an ad-hoc step, the
/// step and its service; nothing scheduled before them.
#[test]
fn a_target_plans_exactly_what_it_needs() {
    let ids = |target: &str| -> Vec<String> {
        let out = crate::support::nixl().args(["plan", "examples/phase2.nixl", "--json", "--target", target]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["change"] != "no-op")
            .map(|a| a["id"].as_str().unwrap().to_string())
            .filter(|id| !id.starts_with("setup."))
            .collect()
    };
    let e2e = ids("p2-efa-12k-c1");
    assert_eq!(e2e, ["stack", "nodes", "upload", "server.2.start", "p2-efa-12k-c1", "server.2.stop"]);
    // An ad-hoc step of the pool: planned on demand, with the etcd it needs.
    let adhoc = ids("p2-ll-nixlbench-ucx-1k-c4");
    assert_eq!(adhoc, ["stack", "nodes", "upload", "service.etcd", "p2-ll-nixlbench-ucx-1k-c4"]);
}

/// A state whose every action is done, with two nodes recorded with `spec`.
fn done_with_nodes(plan: &Plan, spec: Option<String>) -> State {
    let mut s = State::new();
    for a in plan.actions.iter().filter(|a| !a.id.is_transient()) {
        s.actions.insert(a.id.clone(), record(&a.hash.to_string()));
    }
    s.infra.nodes = ["node1", "node2"]
        .iter()
        .map(|n| nixl::state::NodeRecord {
            name: n.to_string(),
            id: format!("i-0{n}"),
            hash: String::new(),
            private_ip: "10.0.1.11".into(),
            zone: Some("us-east-1b".into()),
            region: None,
            instance_type: Some("g6e.12xlarge".into()),
            image: None,
            spec: spec.clone(),
        })
        .collect();
    s
}

/// Nodes recorded before nixl encrypted root volumes may run on unencrypted ones: `nixl plan`
/// replaces them (`-/+ nodes`, with the reason) and sets the new ones up; nodes recorded as
/// encrypted stay.
#[test]
fn nodes_recorded_before_volume_encryption_plan_as_replaced_with_the_reason() {
    let loaded = nixl::pipeline::load(&root().join("examples/phase2.nixl"));
    let campaign = loaded.campaign(Some("phase2")).unwrap();
    let st = campaign.stack.as_ref().unwrap();
    let fresh = plan_of(&loaded, Some("phase2"), &State::new());
    // What releases before encryption recorded: the machine alone, no word of its volumes.
    let names: Vec<&str> = st.nodes.iter().map(|n| n.name.as_str()).collect();
    let legacy = nixl::state::content_hash(&(
        &st.instance_types,
        &names,
        st.volume as u64,
        &st.ami,
        &st.ami_parameter,
        st.efa,
        &st.placement,
    ));
    let dir = crate::support::scratch("unencrypted-nodes");
    let plan_text = |spec: Option<String>| -> String {
        let path = dir.join("state.json");
        let _ = std::fs::remove_file(&path);
        done_with_nodes(&fresh, spec).save(&path).unwrap();
        let out = crate::support::nixl().args(["plan", "examples/phase2.nixl", "--state"]).arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let reason = "replaced: launched before nixl recorded volume encryption, their root volumes may be unencrypted";
    for spec in [Some(legacy), None] {
        let p = plan_text(spec.clone());
        assert!(p.contains("-/+ nodes node1, node2") && p.contains(reason), "{spec:?}:\n{p}");
        assert!(p.contains("-/+ setup on node1") || p.contains("-/+ 01-"), "new machines are set up again: {p}");
    }
    // Recorded as launched now (encrypted): nothing to do.
    let p = plan_text(Some(nixl::plan::machine_spec(st)));
    assert!(p.contains("No changes."), "{p}");
}

/// A stack made before nixl had secrets gives its nodes no read of them: the first campaign that
/// uses one updates the stack in place (`~ stack`), once.
#[test]
fn a_campaign_that_first_reads_a_secret_updates_its_stack() {
    let dir = crate::support::scratch("secret-stack");
    let file = dir.join("local-demo.nixl");
    std::fs::copy(root().join("examples/local-demo.nixl"), &file).unwrap();
    let loaded = nixl::pipeline::load(&file);
    let before = plan_of(&loaded, None, &State::new());
    let mut done = State::new();
    for a in before.actions.iter().filter(|a| a.kind == Kind::Stack) {
        done.actions.insert(a.id.clone(), record(&a.hash.to_string()));
    }
    let stack_change = |p: &Plan| p.actions.iter().find(|a| a.kind == Kind::Stack).map(|a| a.change);
    assert_eq!(stack_change(&plan_of(&loaded, None, &done)), Some(Change::NoOp));
    let source = std::fs::read_to_string(&file).unwrap();
    let with_secret = source.replace(
        "    run     = \"python3 --version\"",
        "    run     = \"python3 --version\"\n    env     = { TOKEN = secret(\"env:HF_TOKEN\") }",
    );
    assert_ne!(source, with_secret);
    std::fs::write(&file, with_secret).unwrap();
    let loaded = nixl::pipeline::load(&file);
    assert!(!loaded.check.has_errors(), "{:?}", loaded.check.diagnostics);
    assert_eq!(stack_change(&plan_of(&loaded, None, &done)), Some(Change::Update));
}

/// `examples/phase1.nixl` with `parallel = K` written in, beside the setup it imports.
fn phase1_with_parallel(k: u32) -> std::path::PathBuf {
    let dir = crate::support::scratch(&format!("phase1-parallel-{k}"));
    std::fs::copy(root().join("examples/setup.nixl"), dir.join("setup.nixl")).unwrap();
    let text = std::fs::read_to_string(root().join("examples/phase1.nixl")).unwrap();
    let text = text.replacen("  prefix      = \"p1\"\n", &format!("  prefix      = \"p1\"\n  parallel    = {k}\n"), 1);
    assert!(text.contains("parallel    ="), "the prefix line moved");
    let path = dir.join("phase1.nixl");
    std::fs::write(&path, text).unwrap();
    path
}

fn plan_json(path: &std::path::Path) -> Plan {
    let out = crate::support::nixl().arg("plan").arg(path).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Phase 1 over 4 node sets: within 10 % of the lower bound, as issue 17 asks; every k of the
/// table at or above its bound; one set is the one-set estimate (analyses end before the
/// low-level steps, so the critical path is setup plus all node work). The figures are printed
/// for docs/planning.md (`cargo test --test suite plan::phase1_spread -- --nocapture`).
#[test]
fn phase1_spread_over_node_sets_stays_near_its_bound() {
    let plan = plan_json(&phase1_with_parallel(4));
    let sets = plan.sets.as_ref().expect("parallel = 4 gives node sets");
    assert_eq!(sets.parallel, 4);
    assert_eq!(sets.schedule.len(), 4);
    assert!(sets.makespan_seconds <= 1.10 * sets.bound_seconds, "{} vs {}", sets.makespan_seconds, sets.bound_seconds);
    // Every launch and step is on exactly one set, and each action says which.
    let mut launches: Vec<u32> = sets.schedule.iter().flat_map(|s| s.launches.clone()).collect();
    launches.sort_unstable();
    assert_eq!(launches, (1..=6).collect::<Vec<u32>>());
    let steps: usize = sets.schedule.iter().map(|s| s.steps.len()).sum();
    assert_eq!(steps, plan.actions.iter().filter(|a| a.kind == Kind::Step).count());
    for a in plan.actions.iter().filter(|a| matches!(a.kind, Kind::Pattern | Kind::Step)) {
        let set = a.set.get().expect("a node action has its set") as usize;
        let listed = &sets.schedule[set - 1];
        assert!(
            listed.steps.contains(&a.id.to_string()) || a.launch.get().is_some_and(|n| listed.launches.contains(&n)),
            "{}",
            a.id
        );
    }
    assert_eq!(sets.by_k.len(), 8);
    // One set is the estimate's critical path but for etcd, which the graph starts beside the
    // launches and the sets count on the set that needs it (30 s).
    let one = sets.by_k[0].wall_seconds - plan.estimate.wall_seconds;
    assert_eq!(one, 30.0, "{:?} vs {:?}", sets.by_k[0], plan.estimate);
    eprintln!("| k | makespan | lower bound | above | wall time | node-hours | cost |");
    for k in &sets.by_k {
        assert!(k.makespan_seconds >= k.bound_seconds - 1e-6, "{k:?}");
        eprintln!(
            "| {} | {} | {} | {:.1} % | {} | {:.1} | {} |",
            k.k,
            nixl::check::value::fmt_duration(k.makespan_seconds),
            nixl::check::value::fmt_duration(k.bound_seconds),
            k.above_bound(),
            nixl::check::value::fmt_duration(k.wall_seconds),
            k.node_hours,
            nixl::plan::view::money(k.cost_usd)
        );
    }
    // More sets never make it slower, and the fourth matches the schedule printed.
    assert!(sets.by_k.windows(2).all(|w| w[1].makespan_seconds <= w[0].makespan_seconds + 1e-6));
    assert_eq!(sets.by_k[3].makespan_seconds, sets.makespan_seconds);
    // The text says the same.
    let out = crate::support::nixl().arg("plan").arg(phase1_with_parallel(4)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = format!(
        "Makespan {}, {:.1} % above the lower bound {}",
        nixl::check::value::fmt_duration(sets.makespan_seconds),
        sets.above_bound(),
        nixl::check::value::fmt_duration(sets.bound_seconds)
    );
    assert!(text.contains(&line), "{line}\n{text}");
}

/// A small campaign over three node sets: the plan text, as `nixl plan` prints it.
#[test]
fn a_plan_over_three_node_sets_matches_its_golden() {
    let out = crate::support::nixl().args(["plan", "tests/golden/plan/parallel3.nixl"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    golden(&root().join("tests/golden/plan/parallel3.txt"), &text);
    assert!(text.contains("Spread over 3 node sets"), "{text}");
}

/// `parallel = 1` (written or not) adds nothing: the plan text is byte for byte today's.
#[test]
fn one_node_set_plans_exactly_as_without_parallel() {
    let with_one = plan_json(&phase1_with_parallel(1));
    assert!(with_one.sets.is_none());
    assert!(with_one.actions.iter().all(|a| a.set.is_none()));
    let text = |path: &std::path::Path| {
        let out = crate::support::nixl().arg("plan").arg(path).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(text(&phase1_with_parallel(1)), text(&root().join("examples/phase1.nixl")));
}
