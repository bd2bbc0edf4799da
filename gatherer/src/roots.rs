//! Where the host's `/proc`, `/sys` and `/` are mounted.
//!
//! Inside a Kubernetes DaemonSet the host is mounted at `/host/proc`,
//! `/host/sys` and `/host/root`; in tests the roots are fixture trees. Every
//! reader joins its path onto one of these roots, never onto a literal `/proc`.

use std::path::{Path, PathBuf};

/// The three roots every collector reads through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// The host's procfs (default `/proc`).
    pub procfs: PathBuf,
    /// The host's sysfs (default `/sys`).
    pub sysfs: PathBuf,
    /// The host's root filesystem (default `/`): `/etc/os-release`,
    /// `/etc/machine-id` and the mount points `statvfs` is called on.
    pub rootfs: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
        }
    }
}

impl Roots {
    /// Roots of a fixture tree laid out as `DIR/proc`, `DIR/sys`, `DIR/root`.
    pub fn under(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Roots {
            procfs: dir.join("proc"),
            sysfs: dir.join("sys"),
            rootfs: dir.join("root"),
        }
    }

    /// A path under procfs, e.g. `proc("net/dev")`.
    pub fn proc(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.procfs.join(rel)
    }

    /// A path under sysfs, e.g. `sys("class/net")`.
    pub fn sys(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.sysfs.join(rel)
    }

    /// A host path under the root filesystem. `host` may be absolute (a mount
    /// point from mountinfo): its leading `/` is dropped so it lands under the root.
    pub fn root(&self, host: impl AsRef<Path>) -> PathBuf {
        let host = host.as_ref();
        let rel = host.strip_prefix("/").unwrap_or(host);
        if rel.as_os_str().is_empty() {
            self.rootfs.clone()
        } else {
            self.rootfs.join(rel)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_host_paths_land_under_the_root() {
        let roots = Roots {
            rootfs: PathBuf::from("/host/root"),
            ..Roots::default()
        };
        assert_eq!(roots.root("/var/lib"), PathBuf::from("/host/root/var/lib"));
        assert_eq!(roots.root("/"), PathBuf::from("/host/root"));
        assert_eq!(
            Roots::default().root("/etc/os-release"),
            PathBuf::from("/etc/os-release")
        );
    }
}
