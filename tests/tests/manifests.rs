//! Deployment files stay valid and agree with the binaries they configure.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::binary;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

#[test]
fn kubernetes_manifests_pass_strict_validation() {
    let manifests = files("k8s", "yaml");
    assert!(!manifests.is_empty());
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.34.0"])
        .args(&manifests)
        .output()
        .expect("kubernetes-validate is installed (tests/run.sh installs it with pip)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for m in &manifests {
        let name = m.file_name().unwrap().to_string_lossy();
        assert!(
            text.lines()
                .any(|l| l.contains(&*name) && l.contains("passed")),
            "{name}: {text}"
        );
    }
}

/// Every HOSTPULSE_* variable a deployment file sets is one its binary reads:
/// a typo would otherwise be ignored silently on every node.
#[test]
fn deployment_files_only_set_variables_their_binary_reads() {
    let mut checked = 0;
    for bin in ["gatherer", "reporter"] {
        let help = Command::new(binary(bin)).arg("--help").output().unwrap();
        let help = String::from_utf8(help.stdout).unwrap();
        let mut sources: Vec<PathBuf> = files("k8s", "yaml");
        sources.extend(files("deploy/docker", "Dockerfile"));
        sources.extend(files("deploy/systemd", "service"));
        for file in sources.iter().filter(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            name.starts_with(bin) || name.contains(&format!("-{bin}"))
        }) {
            let text = std::fs::read_to_string(file).unwrap();
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                // A bare "HOSTPULSE_" is prose ("HOSTPULSE_* variables").
                if word.starts_with("HOSTPULSE_") && word.len() > "HOSTPULSE_".len() {
                    assert!(
                        help.contains(&format!("[env: {word}=")),
                        "{} sets {word}, which {bin} --help does not list",
                        file.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 15, "found only {checked} variables");
}
