//! YAML loading and a small `kustomize build` for the manifests under k8s/.
//!
//! YAML is parsed by Debian's python3-yaml (tests/run.sh installs it) and
//! handed over as JSON: no YAML crate in the workspace. The build supports
//! exactly what k8s/ uses (resources, namespace, inline strategic-merge and
//! JSON 6902 patches) and fails on anything else, so a kustomization never
//! silently means more than this test checked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The Debian interpreter, whose python3-yaml tests/run.sh installs.
const PYTHON: &str = "/usr/bin/python3";

/// Every YAML document of each file, in order.
pub(crate) fn load(files: &[PathBuf]) -> Vec<Vec<Value>> {
    let script = "import json, sys, yaml\n\
        json.dump([[d for d in yaml.safe_load_all(open(f)) if d is not None] for f in sys.argv[1:]], sys.stdout)";
    let out = Command::new(PYTHON)
        .args(["-c", script])
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("{PYTHON} runs (tests/run.sh installs python3-yaml): {e}"));
    assert!(
        out.status.success(),
        "YAML does not parse (or python3-yaml is missing: apt-get install python3-yaml): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One YAML string (a patch) as JSON.
pub(crate) fn parse(text: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("patch.yaml");
    std::fs::write(&file, text).unwrap();
    load(&[file]).remove(0).remove(0)
}

/// The result of building one kustomization.
pub(crate) struct Build {
    /// The objects, as `kubectl apply -k` would send them.
    pub(crate) objects: Vec<Value>,
    /// Every manifest file the build read.
    pub(crate) files: BTreeSet<PathBuf>,
}

/// `kustomize build DIR`, for the subset of features described above.
pub(crate) fn build(dir: &Path) -> Build {
    let path = dir.join("kustomization.yaml");
    assert!(path.is_file(), "{} is missing", path.display());
    let k = load(std::slice::from_ref(&path)).remove(0).remove(0);
    for key in k.as_object().unwrap().keys() {
        assert!(
            ["apiVersion", "kind", "namespace", "resources", "patches"].contains(&key.as_str()),
            "{}: `{key}` is not supported by this test's build; extend tests/tests/manifests/kustomize.rs",
            path.display()
        );
    }
    let mut out = Build {
        objects: Vec::new(),
        files: BTreeSet::new(),
    };
    for res in k["resources"].as_array().expect("resources") {
        let res = dir.join(res.as_str().unwrap());
        assert!(
            res.exists(),
            "{} lists {}, which does not exist",
            path.display(),
            res.display()
        );
        if res.is_dir() {
            let sub = build(&res);
            out.objects.extend(sub.objects);
            out.files.extend(sub.files);
        } else {
            out.objects
                .extend(load(std::slice::from_ref(&res)).remove(0));
            out.files.insert(res.canonicalize().unwrap());
        }
    }
    if let Some(ns) = k["namespace"].as_str() {
        for o in out.objects.iter_mut().filter(|o| o["kind"] != "Namespace") {
            o["metadata"]["namespace"] = ns.into();
        }
    }
    for p in k["patches"].as_array().into_iter().flatten() {
        let patch = parse(p["patch"].as_str().expect("inline patches only"));
        if let Some(ops) = patch.as_array() {
            let t = &p["target"];
            let i = find(&out.objects, &t["kind"], &t["name"], &path);
            for op in ops {
                json_patch(&mut out.objects[i], op);
            }
        } else {
            let i = find(
                &out.objects,
                &patch["kind"],
                &patch["metadata"]["name"],
                &path,
            );
            if patch["$patch"] == "delete" {
                out.objects.remove(i);
            } else {
                merge(&mut out.objects[i], &patch);
            }
        }
    }
    let mut ids = BTreeSet::new();
    for o in &out.objects {
        let id = format!(
            "{} {}/{}",
            o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]
        );
        assert!(ids.insert(id.clone()), "{}: {id} twice", path.display());
    }
    out
}

fn find(objects: &[Value], kind: &Value, name: &Value, path: &Path) -> usize {
    let found: Vec<usize> = (0..objects.len())
        .filter(|&i| objects[i]["kind"] == *kind && objects[i]["metadata"]["name"] == *name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{}: a patch targets {kind} {name}, found {}",
        path.display(),
        found.len()
    );
    found[0]
}

/// RFC 6902 `add`, `replace` and `remove`.
fn json_patch(doc: &mut Value, op: &Value) {
    let path = op["path"].as_str().unwrap();
    let (parent, last) = path.rsplit_once('/').unwrap();
    let target = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match (op["op"].as_str().unwrap(), target) {
        ("add", Value::Array(a)) if last == "-" => a.push(op["value"].clone()),
        ("add" | "replace", Value::Object(m)) => {
            assert!(
                op["op"] == "add" || m.contains_key(last),
                "replace of missing {path}"
            );
            m.insert(last.to_string(), op["value"].clone());
        }
        ("replace", Value::Array(a)) => a[last.parse::<usize>().unwrap()] = op["value"].clone(),
        ("remove", Value::Object(m)) => assert!(m.remove(last).is_some(), "no {path}"),
        (o, _) => panic!("JSON patch `{o}` at {path} is not supported here"),
    }
}

/// Strategic merge: maps merge, lists of named items merge by their key
/// (`name`, or `mountPath` for volume mounts), other lists are replaced.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(old) => merge(old, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(p)) if p.iter().all(|i| merge_key(i).is_some()) => {
            for item in p {
                let key = merge_key(item);
                match b.iter_mut().find(|old| merge_key(old) == key) {
                    Some(old) => merge(old, item),
                    None => b.push(item.clone()),
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn merge_key(item: &Value) -> Option<&Value> {
    item.get("mountPath").or_else(|| item.get("name"))
}
