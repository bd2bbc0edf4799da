//! The gatherer binary, run as an operator runs it: against this host, against
//! fixture trees, with broken files, with signals and closed pipes.

use std::path::Path;
use std::time::Duration;

use hostpulse_testkit::{Process, fixture, root_args, run};

use hostpulse_testkit::args;

fn num(row: &serde_json::Value, field: &str) -> f64 {
    row["fields"][field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing in {row}"))
}

fn meminfo_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{key} in meminfo"))
}

#[test]
fn once_on_this_host_reports_every_family_it_has() {
    let out = run("gatherer", &args(&["--once", "--interval", "300ms"]), &[]);
    assert!(out.status.success(), "stderr: {}", out.stderr);
    let rows = &out.rows;
    let mut expected = vec![
        "hostpulse_self",
        "cpu",
        "filesystem",
        "load",
        "memory",
        "netstat",
        "network",
        "node_info",
        "processes",
        "swap",
        "system",
        "vmstat",
    ];
    if Path::new("/proc/pressure/cpu").exists() {
        expected.push("pressure");
    }
    if Path::new("/sys/class/hwmon").exists() {
        expected.push("hwmon");
    }
    let has_disk = std::fs::read_dir("/sys/block").unwrap().any(|e| {
        let n = e.unwrap().file_name().into_string().unwrap();
        !["loop", "ram", "fd", "sr"].iter().any(|p| n.starts_with(p))
    });
    if has_disk {
        expected.push("disk");
    }
    expected.sort_unstable();
    assert_eq!(rows.tables(), expected);

    // One cpu row per online core plus the total, all with percentages
    // (--once waits one interval so rates exist).
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cores = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(rows.table("cpu").len(), cores + 1);
    let total = rows.find("cpu", "cpu", "total");
    assert!(num(total, "idle_seconds_total") > 0.0);
    let sum: f64 = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ]
    .iter()
    .map(|m| num(total, &format!("{m}_percent")))
    .sum();
    assert!(
        (sum - 100.0).abs() < 0.5,
        "mode percentages add up to 100, got {sum}"
    );

    // Values agree with the kernel's own files.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let memory = &rows.table("memory")[0];
    assert_eq!(
        num(memory, "total_bytes") as u64,
        meminfo_kb(&meminfo, "MemTotal") * 1024
    );
    let lo = rows.find("network", "interface", "lo");
    assert!(lo["fields"]["rx_bytes_per_second"].is_number(), "{lo}");
    let root = rows.find("filesystem", "mountpoint", "/");
    assert!(num(root, "size_bytes") > 0.0 && num(root, "used_percent") <= 100.0);

    // Every row carries the node id: the machine-id by default.
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let node = rows.0[0]["node"].as_str().unwrap().to_string();
    assert!(rows.0.iter().all(|r| r["node"] == node.as_str()));
    if machine_id.trim().len() == 32 {
        assert_eq!(node, machine_id.trim());
    }
    let info = rows.table("node_info");
    let host = info
        .iter()
        .find(|r| r["tags"]["hostname"].is_string())
        .expect("host facts row");
    assert!(num(host, "logical_cores") >= 1.0, "{host}");
    let agent = &rows.table("hostpulse_self")[0];
    assert_eq!(num(agent, "families_failed"), 0.0, "{agent}");
}

#[test]
fn captured_fixture_tree_is_read_through_the_roots() {
    let dir = fixture("debian12-vm");
    let mut a = args(&["--once", "--interval", "50ms", "--node-id", "fixture-1"]);
    a.extend(root_args(&dir));
    let out = run("gatherer", &a, &[]);
    assert!(out.status.success(), "stderr: {}", out.stderr);
    let rows = &out.rows;
    let meminfo = std::fs::read_to_string(dir.join("proc/meminfo")).unwrap();
    let memory = &rows.table("memory")[0];
    assert_eq!(
        num(memory, "total_bytes") as u64,
        meminfo_kb(&meminfo, "MemTotal") * 1024
    );
    assert_eq!(memory["node"], "fixture-1");
    for iface in ["lo", "eth0", "ifb0", "ifb1"] {
        rows.find("network", "interface", iface);
    }
    assert_eq!(rows.table("cpu").len(), 3, "cpu0, cpu1 and total");
    // Loop and zram devices: loop* is excluded by default, vda and zram0 stay.
    let disks: Vec<&str> = rows
        .table("disk")
        .iter()
        .map(|r| r["tags"]["device"].as_str().unwrap())
        .collect();
    assert!(
        disks.contains(&"vda") && !disks.iter().any(|d| d.starts_with("loop")),
        "{disks:?}"
    );
    // Counters did not move between the two readings of a static tree.
    let eth0 = rows.find("network", "interface", "eth0");
    assert_eq!(num(eth0, "rx_bytes_per_second"), 0.0);
    assert_eq!(num(eth0, "rx_bytes_total"), 32005407.0);
    let info = rows.table("node_info");
    let host = info
        .iter()
        .find(|r| r["tags"]["hostname"].is_string())
        .expect("host facts row");
    assert_eq!(host["tags"]["os_name"], "Debian GNU/Linux");
}

#[test]
fn a_missing_family_is_disabled_and_the_others_still_report() {
    // A copy of the captured tree without PSI and without hwmon.
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture("debian12-vm"), tmp.path());
    std::fs::remove_dir_all(tmp.path().join("proc/pressure")).unwrap();
    let mut a = args(&["--once", "--interval", "50ms"]);
    a.extend(root_args(tmp.path()));
    let out = run("gatherer", &a, &[]);
    assert!(out.status.success(), "stderr: {}", out.stderr);
    assert!(out.rows.table("pressure").is_empty());
    assert!(!out.rows.table("memory").is_empty());
    let disabled: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("family disabled"))
        .collect();
    assert_eq!(
        disabled.iter().filter(|l| l.contains("pressure")).count(),
        1,
        "{}",
        out.stderr
    );
    let agent = &out.rows.table("hostpulse_self")[0];
    assert_eq!(num(agent, "families_failed"), 0.0);
    assert!(num(agent, "families_disabled") >= 1.0);
}

#[test]
fn garbage_and_truncated_files_are_counted_errors_not_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture("debian12-vm"), tmp.path());
    std::fs::write(
        tmp.path().join("proc/meminfo"),
        b"\x00\xffMemTotal: lots kB\n",
    )
    .unwrap();
    let dev = std::fs::read_to_string(tmp.path().join("proc/net/dev")).unwrap();
    std::fs::write(tmp.path().join("proc/net/dev"), &dev[..dev.len() - 40]).unwrap();
    std::fs::write(tmp.path().join("proc/stat"), b"cpu  1 2\n").unwrap();
    let mut a = args(&["--once", "--interval", "50ms"]);
    a.extend(root_args(tmp.path()));
    let out = run("gatherer", &a, &[]);
    assert!(out.status.success(), "stderr: {}", out.stderr);
    for broken in ["memory", "network", "cpu"] {
        assert!(
            out.rows.table(broken).is_empty(),
            "{broken} must not report from a broken file"
        );
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains("collection failed") && l.contains(broken)),
            "a warning names {broken}: {}",
            out.stderr
        );
    }
    // One warning per streak, not one per cycle.
    let memory_warnings = out
        .stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("family=memory"))
        .count();
    assert_eq!(memory_warnings, 1, "{}", out.stderr);
    for fine in ["load", "disk", "netstat", "filesystem", "node_info"] {
        assert!(!out.rows.table(fine).is_empty(), "{fine} still reports");
    }
    let agent = &out.rows.table("hostpulse_self")[0];
    assert_eq!(
        num(agent, "memory_errors_total"),
        2.0,
        "priming and reported cycle both failed"
    );
    assert_eq!(num(agent, "load_errors_total"), 0.0);
    assert!(num(agent, "families_failed") >= 3.0);
}

#[test]
fn environment_variables_configure_everything() {
    let out = run(
        "gatherer",
        &args(&["--once"]),
        &[
            ("HOSTPULSE_INTERVAL", "100ms"),
            ("HOSTPULSE_NODE_ID", "web-1"),
            ("HOSTPULSE_COLLECTORS", "cpu,load"),
            ("HOSTPULSE_LABELS", "region=eu-west,zone=b"),
        ],
    );
    assert!(out.status.success(), "stderr: {}", out.stderr);
    assert_eq!(out.rows.tables(), ["cpu", "hostpulse_self", "load"]);
    for row in &out.rows.0 {
        assert_eq!(row["node"], "web-1");
        assert_eq!(row["tags"]["region"], "eu-west");
        assert_eq!(row["tags"]["zone"], "b");
    }
    assert_eq!(
        out.rows.find("cpu", "cpu", "total")["tags"]["region"],
        "eu-west"
    );
}

#[test]
fn bad_command_lines_are_refused_with_a_reason() {
    for (bad, reason) in [
        (vec!["--collectors", "cpu,gpu"], "unknown collector \"gpu\""),
        (vec!["--interval", "soon"], "--interval"),
        (vec!["--label", "cpu=1"], "already a tag"),
        (vec!["--label", "a=1", "--label", "a=2"], "more than once"),
    ] {
        let out = run("gatherer", &args(&bad), &[]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(out.stderr.contains(reason), "{bad:?}: {}", out.stderr);
        assert!(out.rows.0.is_empty());
    }
}

#[test]
fn stdout_mode_streams_until_sigterm_and_stops_cleanly() {
    let mut p = Process::start(
        "gatherer",
        &args(&["--stdout", "--interval", "100ms", "--collectors", "load"]),
    );
    let mut agents = 0;
    while agents < 3 {
        let line = p.read_line().expect("a line before SIGTERM");
        let row: serde_json::Value = serde_json::from_str(&line).unwrap();
        agents += usize::from(row["table"] == "hostpulse_self");
    }
    p.signal("TERM");
    let status = p.wait(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    // Whatever was flushed before the signal is whole lines.
    while let Some(line) = p.read_line() {
        serde_json::from_str::<serde_json::Value>(&line).expect("complete JSON line");
    }
}

#[test]
fn a_closed_stdout_ends_the_gatherer_quietly() {
    let mut p = Process::start("gatherer", &args(&["--stdout", "--interval", "20ms"]));
    assert!(p.read_line().is_some());
    p.close_stdout();
    let status = p.wait(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}

#[test]
fn cycles_bounds_the_run() {
    let out = run(
        "gatherer",
        &args(&["--stdout", "--interval", "100ms", "--cycles", "5"]),
        &[],
    );
    assert!(out.status.success());
    assert_eq!(out.rows.table("hostpulse_self").len(), 5);
    // The first cycle has no rates; later ones do. The all-CPU row: 100 ms
    // is ~10 kernel ticks per CPU, so its percentages always have a base (a
    // single CPU's row over one 10 ms tick may not, and then has none).
    let totals: Vec<_> = out
        .rows
        .table("cpu")
        .into_iter()
        .filter(|r| r["tags"]["cpu"] == "total")
        .collect();
    assert_eq!(totals.len(), 5);
    assert!(totals[0]["fields"].get("user_percent").is_none());
    assert!(totals[4]["fields"]["user_percent"].is_number());
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
