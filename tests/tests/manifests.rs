//! Deployment files stay valid and agree with each other and with the
//! binaries they configure: what an operator would otherwise find out from
//! a pod stuck in CrashLoopBackOff, a Service with no endpoints, a policy
//! that blocks nothing or a dashboard panel that says "column not found".
//!
//! # Layout
//! - `manifests/kustomize.rs`: YAML loading and a small `kustomize build`.
//! - `manifests/sql.rs`: schema.sql's tables and a column check for queries.

#[path = "manifests/kustomize.rs"]
mod kustomize;
#[path = "manifests/sql.rs"]
mod sql;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use hostpulse_testkit::binary;
use serde_json::Value;

use kustomize::Build;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Files under `dir` (recursively) whose name ends with `suffix`.
fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, suffix, out);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join(dir), suffix, &mut out);
    out.sort();
    out
}

fn kustomizations() -> Vec<(PathBuf, Build)> {
    let dirs: Vec<PathBuf> = files("k8s", "kustomization.yaml")
        .iter()
        .map(|f| f.parent().unwrap().to_path_buf())
        .collect();
    assert!(
        dirs.len() >= 3,
        "k8s/, the StatefulSet and the mTLS variants: {dirs:?}"
    );
    dirs.into_iter()
        .map(|d| (d.clone(), kustomize::build(&d)))
        .collect()
}

fn help(bin: &str) -> String {
    let out = Command::new(binary(bin)).arg("--help").output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// `kubernetes-validate --strict` on `files`; every resource must pass.
fn validate(files: &[PathBuf]) -> String {
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.34.0"])
        .args(files)
        .output()
        .expect("kubernetes-validate is installed (tests/run.sh installs it with pip)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
    text
}

#[test]
fn every_manifest_and_every_build_pass_strict_validation() {
    let manifests: Vec<PathBuf> = files("k8s", ".yaml")
        .into_iter()
        .filter(|f| !f.ends_with("kustomization.yaml"))
        .collect();
    let text = validate(&manifests);
    for m in &manifests {
        let name = m
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            text.lines()
                .any(|l| l.contains(&name) && l.contains("passed")),
            "{name}: {text}"
        );
    }
    // What the patches of the variants produce, as kubectl would send it.
    let dir = tempfile::tempdir().unwrap();
    for (d, b) in kustomizations() {
        let file = dir
            .path()
            .join(format!("{}.yaml", d.file_name().unwrap().to_string_lossy()));
        let docs: Vec<String> = b.objects.iter().map(|o| o.to_string()).collect();
        std::fs::write(&file, docs.join("\n---\n")).unwrap();
        let text = validate(std::slice::from_ref(&file));
        assert_eq!(
            text.matches("passed").count(),
            b.objects.len(),
            "{}: {text}",
            d.display()
        );
    }
}

#[test]
fn kustomizations_reach_every_manifest() {
    let mut reached = BTreeSet::new();
    for (_, b) in kustomizations() {
        reached.extend(b.files);
    }
    for f in files("k8s", ".yaml")
        .iter()
        .filter(|f| !f.ends_with("kustomization.yaml"))
    {
        assert!(
            reached.contains(f),
            "{} is in no kustomization: `kubectl apply -k` never applies it",
            f.display()
        );
    }
}

/// Pod templates of the workloads: (kind/name, pod labels, pod spec).
fn workloads(objects: &[Value]) -> Vec<(String, &Value, &Value)> {
    objects
        .iter()
        .filter(|o| {
            ["Deployment", "StatefulSet", "DaemonSet", "Job"].contains(&o["kind"].as_str().unwrap())
        })
        .map(|o| {
            let t = &o["spec"]["template"];
            (
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                ),
                &t["metadata"]["labels"],
                &t["spec"],
            )
        })
        .collect()
}

fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    objects.iter().filter(move |o| o["kind"] == kind)
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    let init = pod["initContainers"].as_array().into_iter().flatten();
    pod["containers"].as_array().unwrap().iter().chain(init)
}

/// A container's port by name or number, if it declares it.
fn container_port(c: &Value, port: &Value) -> Option<u64> {
    c["ports"].as_array().into_iter().flatten().find_map(|p| {
        (p["name"] == *port || p["containerPort"] == *port)
            .then(|| p["containerPort"].as_u64().unwrap())
    })
}

#[test]
fn services_policies_and_scalers_select_real_workloads() {
    for (dir, b) in kustomizations() {
        let w = workloads(&b.objects);
        let here = dir.display();
        for s in of_kind(&b.objects, "Service") {
            let picked: Vec<_> = w
                .iter()
                .filter(|(_, l, _)| selects(&s["spec"]["selector"], l))
                .collect();
            assert!(
                !picked.is_empty(),
                "{here}: Service {} selects no pod",
                s["metadata"]["name"]
            );
            for p in s["spec"]["ports"].as_array().unwrap() {
                for (name, _, pod) in &picked {
                    assert!(
                        containers(pod).any(|c| container_port(c, &p["targetPort"]).is_some()),
                        "{here}: Service {} targets port {} that {name} does not open",
                        s["metadata"]["name"],
                        p["targetPort"]
                    );
                }
            }
        }
        for np in of_kind(&b.objects, "NetworkPolicy") {
            let sel = &np["spec"]["podSelector"]["matchLabels"];
            let name = &np["metadata"]["name"];
            let picked: Vec<_> = w.iter().filter(|(_, l, _)| selects(sel, l)).collect();
            assert!(
                sel.is_null() || !picked.is_empty(),
                "{here}: NetworkPolicy {name} applies to no pod"
            );
            for rule in np["spec"]["ingress"].as_array().into_iter().flatten() {
                for port in rule["ports"].as_array().into_iter().flatten() {
                    for (wname, _, pod) in &picked {
                        let open =
                            containers(pod).any(|c| container_port(c, &port["port"]).is_some());
                        assert!(
                            open,
                            "{here}: NetworkPolicy {name} admits port {} that {wname} does not open",
                            port["port"]
                        );
                    }
                }
            }
            let peers = ["ingress", "egress"].into_iter().flat_map(|dirn| {
                np["spec"][dirn]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|r| {
                        r["from"]
                            .as_array()
                            .into_iter()
                            .chain(r["to"].as_array())
                            .flatten()
                    })
            });
            // Peers in this namespace (no namespaceSelector) must exist.
            for peer in
                peers.filter(|p| p["namespaceSelector"].is_null() && !p["podSelector"].is_null())
            {
                let sel = &peer["podSelector"]["matchLabels"];
                assert!(
                    w.iter().any(|(_, l, _)| selects(sel, l)),
                    "{here}: NetworkPolicy {name} names peer {sel}, no such pod"
                );
            }
        }
        for pdb in of_kind(&b.objects, "PodDisruptionBudget") {
            let sel = &pdb["spec"]["selector"]["matchLabels"];
            assert!(
                w.iter().any(|(_, l, _)| selects(sel, l)),
                "{here}: PDB selects no pod"
            );
        }
        for hpa in of_kind(&b.objects, "HorizontalPodAutoscaler") {
            let t = &hpa["spec"]["scaleTargetRef"];
            let target = format!(
                "{}/{}",
                t["kind"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            );
            let (_, _, pod) = w
                .iter()
                .find(|(n, _, _)| *n == target)
                .unwrap_or_else(|| panic!("{here}: HPA scales {target}, which is not here"));
            // A CPU utilization target needs CPU requests.
            assert!(
                containers(pod).all(|c| !c["resources"]["requests"]["cpu"].is_null()),
                "{here}: {target} lacks CPU requests"
            );
        }
        for sts in of_kind(&b.objects, "StatefulSet") {
            let svc = &sts["spec"]["serviceName"];
            assert!(
                of_kind(&b.objects, "Service").any(|s| s["metadata"]["name"] == *svc),
                "{here}: serviceName {svc} is no Service"
            );
        }
    }
}

/// The reporter's ConfigMap file, parsed.
fn reporter_toml(objects: &[Value]) -> toml::Table {
    let cm = of_kind(objects, "ConfigMap")
        .find(|c| c["metadata"]["name"] == "hostpulse-reporter")
        .expect("reporter ConfigMap");
    cm["data"]["reporter.toml"]
        .as_str()
        .unwrap()
        .parse()
        .expect("reporter.toml is TOML")
}

fn env<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"].as_str()
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no port in {addr}"))
}

/// The volume mounted at (or above) `path`, and whether it is writable.
fn mount_for<'a>(pod: &'a Value, c: &Value, path: &str) -> Option<(&'a Value, bool)> {
    let m = c["volumeMounts"].as_array()?.iter().find(|m| {
        let mp = m["mountPath"].as_str().unwrap();
        path == mp || path.starts_with(&format!("{mp}/"))
    })?;
    // Not a pod volume: a StatefulSet's volumeClaimTemplate.
    static CLAIM: Value = Value::Null;
    let volumes = pod["volumes"].as_array()?;
    let vol = volumes
        .iter()
        .find(|v| v["name"] == m["name"])
        .unwrap_or(&CLAIM);
    Some((vol, m["readOnly"] != true))
}

/// What users hit first: a probe on a closed port, a file the binary is told
/// to read that no volume provides, a directory it must write on a read-only
/// root filesystem.
#[test]
fn probes_ports_and_paths_agree_with_the_binaries_settings() {
    for (dir, b) in kustomizations() {
        let here = dir.display();
        let conf = reporter_toml(&b.objects);
        for (wname, _, pod) in workloads(&b.objects) {
            for c in containers(pod) {
                for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                    let p = &c[probe];
                    let port = p["grpc"]["port"]
                        .as_u64()
                        .map(Value::from)
                        .or_else(|| p["httpGet"]["port"].as_str().map(Value::from));
                    if let Some(port) = port {
                        assert!(
                            container_port(c, &port).is_some(),
                            "{here}: {wname} {probe} asks port {port}, not a container port"
                        );
                    }
                }
                let image = c["image"].as_str().unwrap();
                let bin = if image.contains("hostpulse/gatherer") {
                    "gatherer"
                } else if image.contains("hostpulse/reporter") {
                    "reporter"
                } else {
                    continue;
                };
                let mut reads: Vec<String> = Vec::new();
                let mut writes: Vec<String> = Vec::new();
                if bin == "gatherer" {
                    let admin = env(c, "HOSTPULSE_ADMIN_LISTEN").expect("gatherer admin listen");
                    assert_eq!(
                        Some(port_of(admin)),
                        container_port(c, &"admin".into()),
                        "{here}: gatherer admin port"
                    );
                    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
                    let url = env(c, "HOSTPULSE_REPORTER").unwrap();
                    let host = url.split("://").nth(1).unwrap();
                    let svc = host.split('.').next().unwrap();
                    let service = of_kind(&b.objects, "Service")
                        .find(|s| s["metadata"]["name"] == svc)
                        .unwrap_or_else(|| panic!("{here}: {url} names no Service"));
                    assert!(
                        service["spec"]["ports"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|p| p["port"].as_u64() == Some(port_of(host))),
                        "{here}: {url}: no such Service port"
                    );
                    for k in [
                        "PROCFS",
                        "SYSFS",
                        "ROOTFS",
                        "TOKEN_FILE",
                        "TLS_CA",
                        "TLS_CERT",
                        "TLS_KEY",
                    ] {
                        reads.extend(env(c, &format!("HOSTPULSE_{k}")).map(String::from));
                    }
                    writes.extend(env(c, "HOSTPULSE_BUFFER_DIR").map(String::from));
                    if url.starts_with("https://") {
                        assert!(
                            env(c, "HOSTPULSE_TLS_CA").is_some(),
                            "{here}: https without a CA"
                        );
                    }
                } else if c["args"]
                    .as_array()
                    .is_some_and(|a| a.contains(&"--apply-schema-and-exit".into()))
                {
                    assert!(
                        c["env"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|e| e["name"] == "HOSTPULSE_QUESTDB"),
                        "{here}: schema Job without --questdb"
                    );
                } else {
                    let listen = conf["listen"].as_str().unwrap();
                    assert_eq!(
                        Some(port_of(listen)),
                        container_port(c, &"grpc".into()),
                        "{here}: reporter gRPC port"
                    );
                    let admin = port_of(conf["admin-listen"].as_str().unwrap());
                    for probe in ["readinessProbe", "livenessProbe"] {
                        assert_eq!(
                            c[probe]["grpc"]["port"].as_u64(),
                            Some(admin),
                            "{here}: {probe} must ask the plaintext admin port"
                        );
                    }
                    let config = env(c, "HOSTPULSE_CONFIG").unwrap();
                    let (vol, _) = mount_for(pod, c, config)
                        .unwrap_or_else(|| panic!("{here}: no volume holds {config}"));
                    let key = config.rsplit('/').next().unwrap();
                    assert!(
                        vol["configMap"]["name"] == "hostpulse-reporter" && key == "reporter.toml",
                        "{here}: {config}"
                    );
                    reads.push(conf["token-file"].as_str().unwrap().into());
                    writes.push(conf["spool-dir"].as_str().unwrap().into());
                    for k in ["TLS_CERT", "TLS_KEY", "TLS_CLIENT_CA"] {
                        reads.extend(env(c, &format!("HOSTPULSE_{k}")).map(String::from));
                    }
                }
                for path in &reads {
                    let (vol, _) = mount_for(pod, c, path).unwrap_or_else(|| {
                        panic!("{here}: {wname} reads {path}, which no volume provides")
                    });
                    if let Some(secret) = vol["secret"]["secretName"].as_str() {
                        let external =
                            ["hostpulse-reporter-tls", "hostpulse-gatherer-tls"].contains(&secret);
                        assert!(
                            external
                                || of_kind(&b.objects, "Secret")
                                    .any(|s| s["metadata"]["name"] == secret),
                            "{here}: Secret {secret} is not deployed"
                        );
                    }
                }
                for path in &writes {
                    let (_, rw) = mount_for(pod, c, path).unwrap_or_else(|| {
                        panic!("{here}: {wname} writes {path} on a read-only root filesystem")
                    });
                    assert!(rw, "{here}: {path} is mounted read-only");
                }
            }
        }
    }
}

fn size_bytes(s: &str) -> u64 {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let unit = match &s[digits.len()..] {
        "Gi" | "GiB" => 1 << 30,
        "Mi" | "MiB" => 1 << 20,
        u => panic!("unit {u} in {s}"),
    };
    digits.parse::<u64>().unwrap() * unit
}

fn seconds(s: &str) -> u64 {
    s.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{s}: write durations in seconds here"))
}

/// A pod deleted before its spool drained, or evicted for a full emptyDir,
/// loses acknowledged batches: the settings must leave room for both.
#[test]
fn reporter_shutdown_fits_the_grace_period_and_the_spool_fits_its_volume() {
    for (dir, b) in kustomizations() {
        let conf = reporter_toml(&b.objects);
        let (_, _, pod) = workloads(&b.objects)
            .into_iter()
            .find(|(n, _, _)| n.ends_with("/hostpulse-reporter"))
            .unwrap();
        let need = seconds(conf["shutdown-timeout"].as_str().unwrap())
            + seconds(conf["drain-timeout"].as_str().unwrap());
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            grace > need,
            "{}: grace {grace} s <= shutdown + drain {need} s",
            dir.display()
        );
        let spool = size_bytes(conf["spool-max-bytes"].as_str().unwrap());
        let sts = of_kind(&b.objects, "StatefulSet")
            .find(|s| s["metadata"]["name"] == "hostpulse-reporter");
        let volume = match sts {
            Some(s) => {
                &s["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
            }
            None => &pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "spool")
                .unwrap()["emptyDir"]["sizeLimit"],
        };
        assert!(
            spool < size_bytes(volume.as_str().unwrap()),
            "{}: spool-max-bytes must stay below the volume",
            dir.display()
        );
    }
}

#[test]
fn pods_run_unprivileged() {
    for (dir, b) in kustomizations() {
        for (wname, _, pod) in workloads(&b.objects) {
            let here = format!("{}: {wname}", dir.display());
            assert_eq!(pod["automountServiceAccountToken"], false, "{here}");
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{here}"
            );
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{here}");
            for c in containers(pod) {
                let sc = &c["securityContext"];
                let name = &c["name"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{here} {name}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{here} {name}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{here} {name}"
                );
                // The one root process: chown of the gatherer's hostPath buffer.
                if sc["runAsUser"] == 0 {
                    assert_eq!(
                        (name.as_str(), &sc["capabilities"]["add"]),
                        (Some("buffer-owner"), &serde_json::json!(["CHOWN"])),
                        "{here}"
                    );
                } else {
                    assert!(sc["capabilities"]["add"].is_null(), "{here} {name}");
                }
                assert!(
                    !c["resources"]["requests"]["memory"].is_null()
                        && !c["resources"]["limits"]["memory"].is_null(),
                    "{here} {name}: memory request and limit"
                );
            }
        }
    }
}

/// The StatefulSet variant runs the same pod as the Deployment, only the
/// spool volume differs: a setting changed in one file and not the other
/// would make the variant a different product.
#[test]
fn statefulset_variant_runs_the_deployments_pod() {
    let repo = repo();
    let d = &kustomize::load(&[repo.join("k8s/reporter-deployment.yaml")])[0][0];
    let s = &kustomize::load(&[
        repo.join("k8s/variants/reporter-statefulset/reporter-statefulset.yaml")
    ])[0][0];
    let mut dpod = d["spec"]["template"].clone();
    dpod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .retain(|v| v["name"] != "spool");
    assert_eq!(dpod, s["spec"]["template"]);
    assert_eq!(
        s["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "spool"
    );
}

/// Every key of a configuration file is a long flag of its binary (the
/// file's keys are the flags in kebab-case), and the gatherers' table has
/// the shape the reporter reads.
fn check_config(file: &str, text: &str, bin: &str, help: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{file}: {e}"));
    for (key, value) in &table {
        if key == "gatherers" && bin == "reporter" {
            let g = value
                .as_table()
                .unwrap_or_else(|| panic!("{file}: [gatherers] is a table"));
            for (k, v) in g {
                assert!(
                    ["interval", "collectors", "nodes"].contains(&k.as_str()),
                    "{file}: gatherers.{k}"
                );
                for rule in v.as_array().into_iter().flatten().filter(|_| k == "nodes") {
                    for k in rule.as_table().unwrap().keys() {
                        assert!(
                            ["match", "interval", "collectors"].contains(&k.as_str()),
                            "{file}: gatherers.nodes.{k}"
                        );
                    }
                }
            }
            continue;
        }
        if !(help.contains(&format!("--{key} ")) || help.contains(&format!("--{key}\n"))) {
            unknown.push(format!("{file}: `{key}` is not a {bin} flag"));
        }
    }
    unknown
}

#[test]
fn configuration_files_parse_and_name_real_flags() {
    let reporter = help("reporter");
    let gatherer = help("gatherer");
    let (_, b) = kustomizations().remove(0);
    let cm = of_kind(&b.objects, "ConfigMap").next().unwrap();
    let mut unknown = check_config(
        "k8s/reporter-config.yaml",
        cm["data"]["reporter.toml"].as_str().unwrap(),
        "reporter",
        &reporter,
    );
    let files = files("deploy", ".toml");
    assert!(
        files.len() >= 2,
        "deploy/systemd/{{gatherer,reporter}}.toml"
    );
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let (bin, help) = if name.contains("gatherer") {
            ("gatherer", &gatherer)
        } else {
            ("reporter", &reporter)
        };
        unknown.extend(check_config(
            &name,
            &std::fs::read_to_string(&f).unwrap(),
            bin,
            help,
        ));
    }
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
}

/// Every HOSTPULSE_* variable a deployment file sets, and every flag it
/// passes, is one its binary reads: a typo would otherwise be ignored
/// silently on every node.
#[test]
fn deployment_files_only_set_variables_and_flags_their_binary_reads() {
    let helps = [
        ("gatherer", help("gatherer")),
        ("reporter", help("reporter")),
    ];
    let mut checked = 0;
    let mut unknown = BTreeSet::new();
    let mut check = |bin: &str, what: &str, word: &str| {
        let help = &helps.iter().find(|(b, _)| *b == bin).unwrap().1;
        let ok = if word.starts_with("--") {
            help.contains(&format!("{word} ")) || help.contains(&format!("{word}\n"))
        } else {
            help.contains(&format!("[env: {word}="))
        };
        if !ok {
            unknown.insert(format!(
                "{what} sets {word}, which {bin} --help does not list"
            ));
        }
        checked += 1;
    };
    let bin_of = |image: &str| {
        ["gatherer", "reporter"]
            .into_iter()
            .find(|b| image.contains(&format!("hostpulse/{b}")))
    };
    for (dir, b) in kustomizations() {
        for (wname, _, pod) in workloads(&b.objects) {
            for c in containers(pod) {
                let Some(bin) = bin_of(c["image"].as_str().unwrap()) else {
                    continue;
                };
                let what = format!("{}: {wname}", dir.display());
                for e in c["env"].as_array().into_iter().flatten() {
                    let name = e["name"].as_str().unwrap();
                    if name.starts_with("HOSTPULSE_") {
                        check(bin, &what, name);
                    }
                }
                for a in c["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter(|a| a.starts_with("--"))
                {
                    check(bin, &what, a.split('=').next().unwrap());
                }
            }
        }
    }
    let compose = &kustomize::load(&[repo().join("deploy/compose/docker-compose.yml")])[0][0];
    for (name, svc) in compose["services"].as_object().unwrap() {
        let Some(bin) = bin_of(svc["image"].as_str().unwrap()) else {
            continue;
        };
        for k in svc["environment"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
        {
            check(bin, &format!("docker-compose.yml {name}"), k);
        }
        for a in svc["command"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|a| a.starts_with("--"))
        {
            check(
                bin,
                &format!("docker-compose.yml {name}"),
                a.split('=').next().unwrap(),
            );
        }
    }
    let mut sources = files("deploy/docker", "Dockerfile");
    sources.extend(files("deploy/systemd", ".service"));
    for file in sources {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let bin = ["gatherer", "reporter"]
            .into_iter()
            .find(|b| name.contains(b))
            .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            // A bare "HOSTPULSE_" is prose ("HOSTPULSE_* variables").
            if word.starts_with("HOSTPULSE_") && word.len() > "HOSTPULSE_".len() {
                check(bin, &name, word);
            }
        }
        for line in text.lines().filter(|l| l.starts_with("ExecStart=")) {
            for flag in line.split_whitespace().filter(|w| w.starts_with("--")) {
                check(bin, &name, flag.split('=').next().unwrap());
            }
        }
    }
    assert!(checked >= 40, "found only {checked} variables and flags");
    assert!(unknown.is_empty(), "{}", Vec::from_iter(unknown).join("\n"));
}

/// Every SQL query of the dashboard reads tables and columns that
/// deploy/questdb/schema.sql creates (and so that the gatherer sends).
#[test]
fn grafana_dashboard_queries_name_real_tables_and_columns() {
    let schema =
        sql::schema(&std::fs::read_to_string(repo().join("deploy/questdb/schema.sql")).unwrap());
    assert!(
        schema.len() >= 14 && schema["cpu"].contains("usage_percent"),
        "{schema:?}"
    );
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/hostpulse.json")).unwrap(),
    )
    .unwrap();
    let vars = dash["templating"]["list"].as_array().unwrap();
    let node = vars
        .iter()
        .find(|v| v["name"] == "node")
        .expect("a `node` variable");
    let mut queries = vec![(
        "variable node".to_string(),
        node["query"].as_str().unwrap().to_string(),
    )];
    let mut titles = Vec::new();
    let mut stack: Vec<&Value> = dash["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().into_iter().flatten());
        titles.push(p["title"].as_str().unwrap().to_lowercase());
        for t in p["targets"].as_array().into_iter().flatten() {
            assert_eq!(
                t["datasource"]["type"], "questdb-questdb-datasource",
                "{}",
                p["title"]
            );
            queries.push((
                p["title"].to_string(),
                t["rawSql"].as_str().unwrap().to_string(),
            ));
        }
    }
    for topic in [
        "nodes",
        "cpu",
        "memory",
        "network",
        "disk",
        "filesystem",
        "pressure",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no {topic} panel in {titles:?}"
        );
    }
    assert!(queries.len() >= 10);
    for (title, q) in &queries {
        let unknown = sql::unknown_names(q, &schema);
        assert!(unknown.is_empty(), "{title}: {unknown:?} in {q}");
        if q.contains("SAMPLE BY") {
            assert!(
                q.contains("$__timeFilter(ts)") && q.contains("$__sampleByInterval"),
                "{title}: {q}"
            );
        }
    }
}

/// The compose file parses, builds from Dockerfiles that exist, mounts files
/// that exist and volumes it declares, and points the gatherer at the port the
/// reporter publishes.
#[test]
fn compose_file_is_consistent() {
    let dir = repo().join("deploy/compose");
    let compose = &kustomize::load(&[dir.join("docker-compose.yml")])[0][0];
    let services = compose["services"].as_object().unwrap();
    let declared = compose["volumes"].as_object().unwrap();
    for (name, s) in services {
        if let Some(b) = s.get("build") {
            let ctx = dir.join(b["context"].as_str().unwrap());
            assert!(
                ctx.join(b["dockerfile"].as_str().unwrap()).is_file(),
                "{name}: Dockerfile"
            );
        }
        for v in s["volumes"].as_array().into_iter().flatten() {
            let source = v.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with('.') {
                assert!(
                    dir.join(source).exists(),
                    "{name} mounts {source}, which does not exist"
                );
            } else if !source.starts_with('/') {
                assert!(
                    declared.contains_key(source),
                    "{name} uses volume {source}, not declared"
                );
            }
        }
    }
    for name in ["questdb", "reporter", "gatherer"] {
        assert!(services.contains_key(name), "no {name} service");
    }
    assert!(
        services["questdb"]["image"]
            .as_str()
            .unwrap()
            .starts_with("questdb/questdb:")
    );
    let reporter = &services["reporter"];
    let published: Vec<String> = reporter["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let url = services["gatherer"]["environment"]["HOSTPULSE_REPORTER"]
        .as_str()
        .unwrap();
    assert!(
        published
            .iter()
            .any(|p| p.ends_with(&format!(":{}", port_of(url)))),
        "{url} vs {published:?}"
    );
    let qdb = reporter["environment"]["HOSTPULSE_QUESTDB"]
        .as_str()
        .unwrap();
    assert!(qdb.contains("addr=questdb:9000"), "{qdb}");
    assert_eq!(services["gatherer"]["network_mode"], "host");
    assert_eq!(services["gatherer"]["pid"], "host");
}

/// Prometheus finds /metrics where the annotations say, and the reporter's
/// liveness probe asks the health service that never turns NOT_SERVING.
#[test]
fn scrape_annotations_and_liveness_point_at_the_admin_port() {
    let mut scraped = 0;
    for (dir, b) in kustomizations() {
        let here = dir.display();
        for o in b.objects.iter().filter(|o| {
            ["Deployment", "StatefulSet", "DaemonSet"].contains(&o["kind"].as_str().unwrap())
        }) {
            let name = o["metadata"]["name"].as_str().unwrap();
            let template = &o["spec"]["template"];
            let notes = &template["metadata"]["annotations"];
            let Some(port) = notes["prometheus.io/port"].as_str() else {
                continue;
            };
            assert_eq!(notes["prometheus.io/scrape"], "true", "{here}: {name}");
            assert_eq!(notes["prometheus.io/path"], "/metrics", "{here}: {name}");
            let admin = containers(&template["spec"])
                .find_map(|c| container_port(c, &"admin".into()))
                .unwrap_or_else(|| panic!("{here}: {name} has no admin port"));
            assert_eq!(port, admin.to_string(), "{here}: {name} scrape port");
            scraped += 1;
            if name == "hostpulse-reporter" {
                let c = containers(&template["spec"]).next().unwrap();
                assert_eq!(
                    c["livenessProbe"]["grpc"]["service"], "liveness",
                    "{here}: a full spool must not restart the reporter"
                );
                assert!(
                    c["readinessProbe"]["grpc"]["service"].is_null(),
                    "{here}: readiness follows the overall status"
                );
            }
        }
    }
    assert!(scraped >= 4, "only {scraped} workloads are scraped");
}
