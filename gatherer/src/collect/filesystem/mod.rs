//! `filesystem`: space and inodes of every mounted filesystem.
//!
//! Mounts come from `/proc/1/mountinfo` (init's mount namespace: the host's
//! mounts when the host's `/proc` is mounted into a container), or from
//! `/proc/self/mountinfo` when that cannot be read. Each mount point is
//! measured with `statvfs(2)` on its path under the host root filesystem.
//!
//! One row per visible mount point, table `filesystem`, tags `device` (the
//! mount source: `/dev/sda1`, `server:/export`, `tmpfs`; `none` when empty),
//! `mountpoint` and `fstype`. Skipped: filesystem types matching
//! `--fs-types-exclude`, mount points matching `--mountpoints-exclude`, mounts
//! hidden under a later mount on the same point (only the last, visible one is
//! reported), mount points absent under the root, and mount points whose
//! `statvfs` hangs (see [`statfs`]).
//!
//! Fields:
//!
//! - `size_bytes`: total size (`f_blocks × f_frsize`).
//! - `free_bytes`: free space, including the blocks reserved for root
//!   (`f_bfree × f_frsize`).
//! - `available_bytes`: space free to unprivileged users (`f_bavail × f_frsize`).
//! - `used_bytes`: `size_bytes - free_bytes`.
//! - `used_percent`: `used / (used + available) × 100`, as `df` computes it
//!   (so a disk whose non-reserved space is full shows 100); absent when the
//!   denominator is zero.
//! - `inodes`, `inodes_free`, `inodes_used`: inode counts (`f_files`,
//!   `f_ffree`, their difference).
//! - `inodes_used_percent`: `inodes_used / inodes × 100`; absent for
//!   filesystems without an inode count (`inodes` 0: btrfs, vfat, ...).
//! - `readonly`: 1 when the mount or its superblock is mounted read-only (an
//!   `ro` option in mountinfo), else 0.
//!
//! Byte products saturate at `u64::MAX` instead of wrapping.

pub mod statfs;
pub mod watch;

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;

use super::error::{CollectError, ParseError, parse_u64};
use super::patterns::Patterns;
use super::{Collector, Cycle, Family, Settings};
use crate::roots::Roots;
use crate::row::Row;
use statfs::{FsStats, Outcome, StatFn, Statter};
use watch::MountWatch;

/// One line of mountinfo, paths decoded, borrowing from the text where no
/// escape had to be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount<'a> {
    /// Mount point in the mount namespace (`/`, `/home`, `/mnt/my disk`).
    pub mount_point: Cow<'a, str>,
    /// Filesystem type, with a FUSE subtype when there is one (`fuse.sshfs`).
    pub fstype: Cow<'a, str>,
    /// Mount source (`/dev/sda1`, `tmpfs`); `none` when the kernel printed it empty.
    pub source: Cow<'a, str>,
    /// Whether the mount or its superblock is read-only.
    pub readonly: bool,
}

/// Decodes the octal escapes (`\040` space, `\011` tab, `\012` newline,
/// `\134` backslash) the kernel writes in mountinfo paths. Any `\` followed
/// by three octal digits is decoded; anything else is kept as it is.
pub fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(&[b'\\', d1 @ b'0'..=b'3', d2 @ b'0'..=b'7', d3 @ b'0'..=b'7']) =
            b.get(i..i + 4)
        {
            out.push(((d1 - b'0') << 6) | ((d2 - b'0') << 3) | (d3 - b'0'));
            i += 4;
        } else {
            out.extend_from_slice(b.get(i..i + 1).unwrap_or_default());
            i += 1;
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Whether a comma-separated option list holds the option `ro` (exactly: not
/// `errors=remount-ro`).
fn has_ro(options: &str) -> bool {
    options.split(',').any(|o| o == "ro")
}

/// Parses one mountinfo line:
///
/// ```text
/// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
/// ```
///
/// Fields are separated by single spaces (an empty source leaves two spaces in
/// a row, which must not shift the fields); zero or more optional fields end
/// with a lone `-`. Fields after the super options (future kernels) are ignored.
pub fn parse_mountinfo_line(line: &str) -> Result<Mount<'_>, ParseError> {
    let mut f = line.split(' ');
    let mut next = |what: &str| {
        f.next()
            .ok_or_else(|| ParseError::missing(format!("mountinfo {what}")))
    };
    parse_u64("mount id", next("mount id")?)?;
    parse_u64("parent id", next("parent id")?)?;
    next("major:minor")?;
    next("root")?;
    let mount_point = next("mount point")?;
    let mount_options = next("mount options")?;
    while next("\" - \" separator")? != "-" {}
    let fstype = next("filesystem type")?;
    let source = next("mount source")?;
    let super_options = next("super options")?;
    if !mount_point.starts_with('/') {
        return Err(ParseError::missing(format!(
            "absolute mount point (found {:?})",
            mount_point.chars().take(64).collect::<String>()
        )));
    }
    if fstype.is_empty() {
        return Err(ParseError::missing("mountinfo filesystem type"));
    }
    Ok(Mount {
        mount_point: unescape(mount_point),
        fstype: unescape(fstype),
        source: if source.is_empty() {
            Cow::Borrowed("none")
        } else {
            unescape(source)
        },
        readonly: has_ro(mount_options) || has_ro(super_options),
    })
}

/// Parses the whole of a mountinfo file; blank lines are ignored, any bad line
/// fails the file.
pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount<'_>>, ParseError> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(parse_mountinfo_line)
        .collect()
}

/// Which mounts are visible: for each mount point only the last mount listed
/// (the one stacked on top). Returns one flag per mount.
pub fn visible(mounts: &[Mount<'_>]) -> Vec<bool> {
    let mut seen = HashSet::with_capacity(mounts.len());
    let mut keep = vec![false; mounts.len()];
    for (k, m) in keep.iter_mut().zip(mounts).rev() {
        *k = seen.insert(m.mount_point.as_ref());
    }
    keep
}

/// The space and inode figures of one filesystem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Total bytes.
    pub size: u64,
    /// Free bytes, reserved blocks included.
    pub free: u64,
    /// Bytes free to unprivileged users.
    pub available: u64,
    /// `size - free`.
    pub used: u64,
    /// `used / (used + available) × 100`, when that is defined.
    pub used_percent: Option<f64>,
    /// Total inodes.
    pub inodes_total: u64,
    /// Free inodes.
    pub inodes_free: u64,
    /// `inodes_total - inodes_free`.
    pub inodes_used: u64,
    /// `inodes_used / inodes × 100`, when there are inodes.
    pub inodes_used_percent: Option<f64>,
}

/// Computes the reported figures from `statvfs` output, saturating.
pub fn usage(s: &FsStats) -> Usage {
    let size = s.blocks.saturating_mul(s.block_size);
    let free = s.blocks_free.saturating_mul(s.block_size);
    let available = s.blocks_available.saturating_mul(s.block_size);
    let used = size.saturating_sub(free);
    let denominator = used as f64 + available as f64;
    let inodes_used = s.files.saturating_sub(s.files_free);
    Usage {
        size,
        free,
        available,
        used,
        used_percent: (denominator > 0.0).then(|| used as f64 / denominator * 100.0),
        inodes_total: s.files,
        inodes_free: s.files_free,
        inodes_used,
        inodes_used_percent: (s.files > 0).then(|| inodes_used as f64 / s.files as f64 * 100.0),
    }
}

/// The `filesystem` collector.
pub struct Filesystem {
    init_mountinfo: PathBuf,
    self_mountinfo: PathBuf,
    use_self: bool,
    roots: Roots,
    fs_types_exclude: Patterns,
    mountpoints_exclude: Patterns,
    statter: Statter,
    /// Call `statvfs` directly for [`LOCAL_FS_TYPES`] (false in tests that
    /// inject a blocking stat function, so every call goes through the worker).
    inline_local: bool,
    watch: Option<MountWatch>,
    buf: String,
}

/// Filesystem types whose `statvfs` answers from memory and cannot hang on a
/// remote peer: called inline, saving a thread handoff per mount. Every
/// other type (NFS, CIFS, FUSE, Ceph, 9p, ...) goes through the timed worker.
pub const LOCAL_FS_TYPES: &[&str] = &[
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "zfs",
    "bcachefs",
    "f2fs",
    "jfs",
    "reiserfs",
    "vfat",
    "exfat",
    "ntfs",
    "ntfs3",
    "hfsplus",
    "udf",
    "iso9660",
    "squashfs",
    "erofs",
    "tmpfs",
    "ramfs",
    "devtmpfs",
    "hugetlbfs",
];

impl Filesystem {
    /// A collector reading mountinfo under the configured procfs and calling
    /// `statvfs` under the configured root.
    pub fn new(settings: &Settings) -> Self {
        let mut fs = Self::with_stat(settings, Arc::new(statfs::statvfs));
        fs.inline_local = true;
        fs
    }

    /// As [`Filesystem::new`], with another stat function (tests).
    pub(crate) fn with_stat(settings: &Settings, stat: StatFn) -> Self {
        Filesystem {
            init_mountinfo: settings.roots.proc("1/mountinfo"),
            self_mountinfo: settings.roots.proc("self/mountinfo"),
            use_self: false,
            roots: settings.roots.clone(),
            fs_types_exclude: settings.fs_types_exclude.clone(),
            mountpoints_exclude: settings.mountpoints_exclude.clone(),
            statter: Statter::new(stat, settings.statfs_timeout),
            inline_local: false,
            watch: None,
            buf: String::new(),
        }
    }

    /// Brings `buf` up to date with init's mountinfo, or with our own when
    /// init's cannot be opened (then for good: the cause, a missing or
    /// forbidden file, does not go away). The file stays open and is re-read
    /// only when the mount table changed (see [`watch`]).
    fn read_mountinfo(&mut self, now: std::time::Instant) -> Result<PathBuf, CollectError> {
        if self.watch.is_none() {
            match MountWatch::open(&self.init_mountinfo) {
                Ok(w) if !self.use_self => self.watch = Some(w),
                Ok(_) => {}
                Err(error) if !self.use_self => {
                    tracing::info!(
                        %error,
                        fallback = %self.self_mountinfo.display(),
                        "init's mountinfo unreadable; reporting this process's mount namespace"
                    );
                    self.use_self = true;
                }
                Err(_) => {}
            }
            if self.use_self {
                let w = MountWatch::open(&self.self_mountinfo)
                    .map_err(|e| CollectError::from_io(&self.self_mountinfo, e))?;
                self.watch = Some(w);
            }
        }
        let path = if self.use_self {
            self.self_mountinfo.clone()
        } else {
            self.init_mountinfo.clone()
        };
        let Some(watch) = self.watch.as_mut() else {
            return Err(CollectError::Unavailable { path });
        };
        if watch.stale(now) {
            if let Err(e) = watch.read(now, &mut self.buf) {
                // Reopen next cycle rather than trust a broken handle.
                self.watch = None;
                return Err(CollectError::from_io(&path, e));
            }
        }
        Ok(path)
    }
}

impl Collector for Filesystem {
    fn family(&self) -> Family {
        Family::Filesystem
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        let path = self.read_mountinfo(cycle.at)?;
        let text = std::mem::take(&mut self.buf);
        let result = parse_mountinfo(&text)
            .map_err(|source| CollectError::Parse { path, source })
            .map(|mounts| self.emit(&mounts, cycle, out));
        self.buf = text;
        result
    }
}

impl Filesystem {
    fn emit(&mut self, mounts: &[Mount<'_>], cycle: &Cycle, out: &mut Vec<Row>) {
        self.statter.begin_cycle();
        for (m, _) in mounts.iter().zip(visible(mounts)).filter(|(_, v)| *v) {
            if self.fs_types_exclude.matches(&m.fstype)
                || self.mountpoints_exclude.matches(&m.mount_point)
            {
                continue;
            }
            let may_hang = !(self.inline_local && LOCAL_FS_TYPES.contains(&m.fstype.as_ref()));
            let path = self.roots.root(m.mount_point.as_ref());
            let stats = match self.statter.stat(&m.mount_point, path, may_hang) {
                Outcome::Done(Ok(s)) => s,
                Outcome::Done(Err(e)) => {
                    if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) {
                        tracing::debug!(mount_point = %m.mount_point, "mount point not present under the root; skipped");
                    } else {
                        tracing::debug!(mount_point = %m.mount_point, error = %e, "statvfs failed; skipped");
                    }
                    continue;
                }
                Outcome::TimedOut | Outcome::Stuck => continue,
            };
            let u = usage(&stats);
            let mut row = Row::new("filesystem", cycle.ts)
                .tag("device", m.source.as_ref())
                .tag("mountpoint", m.mount_point.as_ref())
                .tag("fstype", m.fstype.as_ref());
            row.int("size_bytes", u.size);
            row.int("free_bytes", u.free);
            row.int("available_bytes", u.available);
            row.int("used_bytes", u.used);
            row.float_opt("used_percent", u.used_percent);
            row.int("inodes", u.inodes_total);
            row.int("inodes_free", u.inodes_free);
            row.int("inodes_used", u.inodes_used);
            row.float_opt("inodes_used_percent", u.inodes_used_percent);
            row.int("readonly", u64::from(m.readonly));
            out.push(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Value;
    use std::path::Path;
    use std::time::Duration;

    const DEBIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/debian12-vm");
    const EDGE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/edge-disks-mounts"
    );

    fn settings(dir: &str) -> Settings {
        Settings {
            roots: Roots::under(dir),
            ..Settings::default()
        }
    }

    #[test]
    fn parses_the_captured_mountinfo() {
        let text = std::fs::read_to_string(format!("{DEBIAN}/proc/1/mountinfo")).unwrap();
        let mounts = parse_mountinfo(&text).unwrap();
        assert_eq!(mounts.len(), 20);
        let root = mounts.iter().find(|m| m.mount_point == "/").unwrap();
        assert_eq!(
            (root.fstype.as_ref(), root.source.as_ref(), root.readonly),
            ("ext4", "/dev/vda", false)
        );
        let sandbox = &mounts[6];
        assert_eq!(
            sandbox.mount_point,
            "/mnt/sandboxing/model_tools_env/v1/python"
        );
        assert_eq!(sandbox.source, "model_tools_unavailable");
        assert!(sandbox.readonly);
    }

    #[test]
    fn decodes_escapes_and_keeps_fields_in_place() {
        let m = parse_mountinfo_line(
            r"16 1 0:54 / /mnt/nfs\011tab rw,relatime master:3 propagate_from:2 - nfs4 fileserver:/export/home\040dir rw,vers=4.2",
        )
        .unwrap();
        assert_eq!(m.mount_point, "/mnt/nfs\ttab");
        assert_eq!(m.source, "fileserver:/export/home dir");
        assert_eq!(m.fstype, "nfs4");
        // An empty source leaves two spaces in a row.
        let m =
            parse_mountinfo_line(r"19 1 0:57 / /mnt/empty\040src rw - tmpfs  rw,size=4k").unwrap();
        assert_eq!(
            (m.mount_point.as_ref(), m.source.as_ref(), m.fstype.as_ref()),
            ("/mnt/empty src", "none", "tmpfs")
        );
        assert_eq!(unescape(r"/a\134b\012c"), "/a\\b\nc");
        assert_eq!(unescape(r"/a\9x\04"), r"/a\9x\04");
        assert!(matches!(unescape("/plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn readonly_is_an_exact_option() {
        let line = |mo: &str, so: &str| format!("1 0 8:1 / / {mo} - ext4 /dev/sda1 {so}");
        assert!(
            !parse_mountinfo_line(&line("rw,relatime", "rw,errors=remount-ro"))
                .unwrap()
                .readonly
        );
        assert!(
            parse_mountinfo_line(&line("ro,relatime", "rw"))
                .unwrap()
                .readonly
        );
        assert!(
            parse_mountinfo_line(&line("rw", "ro,norecovery"))
                .unwrap()
                .readonly
        );
    }

    #[test]
    fn rejects_truncated_and_garbage_lines() {
        assert!(parse_mountinfo_line("").is_err());
        assert!(parse_mountinfo_line("22 27 0:21 / /proc rw,relatime").is_err());
        assert!(parse_mountinfo_line("22 27 0:21 / /proc rw,relatime - proc").is_err());
        assert!(parse_mountinfo_line("x 27 0:21 / /proc rw - proc proc rw").is_err());
        assert!(parse_mountinfo_line("22 27 0:21 / proc rw - proc proc rw").is_err());
        assert!(parse_mountinfo("22 27 0:21 / /proc rw - proc proc rw\nbad\n").is_err());
        // Future kernels: fields after the super options are ignored.
        assert!(parse_mountinfo_line("22 27 0:21 / /proc rw - proc proc rw extra").is_ok());
    }

    #[test]
    fn only_the_last_mount_on_a_point_is_visible() {
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    2 1 8:2 / /data rw - ext4 /dev/sda2 rw\n\
                    3 1 0:40 / /data rw - tmpfs tmpfs rw\n";
        let mounts = parse_mountinfo(text).unwrap();
        assert_eq!(visible(&mounts), [true, false, true]);
    }

    #[test]
    fn usage_is_computed_like_df_and_saturates() {
        let u = usage(&FsStats {
            block_size: 4096,
            blocks: 1000,
            blocks_free: 300,
            blocks_available: 250,
            files: 100,
            files_free: 40,
        });
        assert_eq!(
            (u.size, u.free, u.available, u.used),
            (4_096_000, 1_228_800, 1_024_000, 2_867_200)
        );
        assert_eq!(u.used_percent, Some(700.0 / 950.0 * 100.0));
        assert_eq!((u.inodes_used, u.inodes_used_percent), (60, Some(60.0)));
        let u = usage(&FsStats::default());
        assert_eq!((u.used_percent, u.inodes_used_percent), (None, None));
        let u = usage(&FsStats {
            block_size: 1 << 20,
            blocks: u64::MAX,
            blocks_free: 0,
            blocks_available: 0,
            files: 5,
            files_free: 9,
        });
        assert_eq!((u.size, u.used, u.inodes_used), (u64::MAX, u64::MAX, 0));
        assert_eq!(u.used_percent, Some(100.0));
    }

    fn tags(out: &[Row]) -> Vec<String> {
        out.iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.tag_value("device").unwrap(),
                    r.tag_value("mountpoint").unwrap(),
                    r.tag_value("fstype").unwrap()
                )
            })
            .collect()
    }

    const VISIBLE: [&str; 10] = [
        "/dev/sda2 / ext4",
        "tmpfs /run tmpfs",
        "/dev/sda1 /boot ext4",
        "/dev/sda4 /boot/efi vfat",
        "/dev/nvme0n1p1 /mnt/my disk ext4",
        "tmpfs /data tmpfs",
        "/dev/sr0 /media/cdrom iso9660",
        "none /mnt/empty src tmpfs",
        "tmpfs /run/user/1000 tmpfs",
        "/dev/sda3 /srv ext4",
    ];

    #[test]
    fn collects_the_edge_tree_with_real_statvfs() {
        let mut fs = Filesystem::new(&settings(EDGE));
        let mut out = Vec::new();
        fs.collect(&Cycle::now(), &mut out).unwrap();
        // Excluded: proc, sysfs, devtmpfs, cgroup2, overlay, squashfs, the kubelet
        // and containerd mounts; hidden: the xfs under /data and the first /srv;
        // absent under root/: the nfs mount and the backslash one.
        assert_eq!(tags(&out), VISIBLE);
        for row in &out {
            assert_eq!(row.table, "filesystem");
            assert!(row.field("size_bytes").is_some());
            assert!(row.field("inodes").is_some());
        }
        let cdrom = out
            .iter()
            .find(|r| r.tag_value("mountpoint") == Some("/media/cdrom"))
            .unwrap();
        assert_eq!(cdrom.field("readonly"), Some(Value::Int(1)));
        assert_eq!(out[0].field("readonly"), Some(Value::Int(0)));
        // Collecting again gives the same rows (no counters, no rates).
        let mut again = Vec::new();
        fs.collect(&Cycle::now(), &mut again).unwrap();
        assert_eq!(tags(&again), VISIBLE);
    }

    #[test]
    fn collects_the_captured_tree() {
        let mut fs = Filesystem::new(&settings(DEBIAN));
        let mut out = Vec::new();
        fs.collect(&Cycle::now(), &mut out).unwrap();
        // /dev/shm and /sys/fs/cgroup are excluded; the sandbox tmpfs has no
        // directory under root/.
        assert_eq!(tags(&out), ["/dev/vda / ext4"]);
    }

    #[test]
    fn fields_follow_the_stat_results() {
        let stat: StatFn = Arc::new(|path: &Path| {
            if path.ends_with("srv") {
                return Err(std::io::Error::from_raw_os_error(13));
            }
            Ok(FsStats {
                block_size: 1024,
                blocks: 100,
                blocks_free: 40,
                blocks_available: 20,
                files: 0,
                files_free: 0,
            })
        });
        let mut fs = Filesystem::with_stat(&settings(EDGE), stat);
        let mut out = Vec::new();
        fs.collect(&Cycle::now(), &mut out).unwrap();
        // The stand-in ignores the root, so the nfs and backslash mount points
        // are measured too; /srv fails and is skipped.
        assert_eq!(out.len(), 11);
        assert!(
            out.iter()
                .all(|r| r.tag_value("mountpoint") != Some("/srv"))
        );
        let root = &out[0];
        assert_eq!(root.field("size_bytes"), Some(Value::Int(102_400)));
        assert_eq!(root.field("free_bytes"), Some(Value::Int(40_960)));
        assert_eq!(root.field("available_bytes"), Some(Value::Int(20_480)));
        assert_eq!(root.field("used_bytes"), Some(Value::Int(61_440)));
        assert_eq!(
            root.field("used_percent"),
            Some(Value::Float(60.0 / 80.0 * 100.0))
        );
        assert_eq!(root.field("inodes_used"), Some(Value::Int(0)));
        assert_eq!(root.field("inodes_used_percent"), None);
        let nfs = out
            .iter()
            .find(|r| r.tag_value("fstype") == Some("nfs4"))
            .unwrap();
        assert_eq!(nfs.tag_value("mountpoint"), Some("/mnt/nfs\ttab"));
        assert_eq!(nfs.tag_value("device"), Some("fileserver:/export/home dir"));
    }

    #[test]
    fn a_hung_mount_does_not_stall_the_others() {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = std::sync::Mutex::new(gate);
        let stat: StatFn = Arc::new(move |path: &Path| {
            if path.ends_with("data") {
                let gate = gate.lock().map_err(|_| std::io::Error::other("poisoned"))?;
                let _ = gate.recv();
            }
            Ok(FsStats::default())
        });
        let mut s = settings(EDGE);
        s.statfs_timeout = Duration::from_millis(100);
        let mut fs = Filesystem::with_stat(&s, stat);
        let mut out = Vec::new();
        fs.collect(&Cycle::now(), &mut out).unwrap();
        assert_eq!(out.len(), 11);
        assert!(
            out.iter()
                .all(|r| r.tag_value("mountpoint") != Some("/data"))
        );
        out.clear();
        fs.collect(&Cycle::now(), &mut out).unwrap();
        assert_eq!(out.len(), 11);
        release.send(()).unwrap();
        fs.statter.settle(Duration::from_secs(10));
        release.send(()).unwrap();
        out.clear();
        fs.collect(&Cycle::now(), &mut out).unwrap();
        assert_eq!(out.len(), 12);
    }

    #[test]
    fn falls_back_to_self_mountinfo() {
        let dir = std::env::temp_dir().join(format!("hostpulse-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("proc/self")).unwrap();
        std::fs::write(
            dir.join("proc/self/mountinfo"),
            "1 0 8:2 / / rw - ext4 /dev/sda2 rw\n",
        )
        .unwrap();
        let s = Settings {
            roots: Roots {
                procfs: dir.join("proc"),
                ..Roots::under(EDGE)
            },
            ..Settings::default()
        };
        let mut fs = Filesystem::new(&s);
        let mut out = Vec::new();
        fs.collect(&Cycle::now(), &mut out).unwrap();
        assert_eq!(tags(&out), ["/dev/sda2 / ext4"]);
        assert!(fs.use_self);
        std::fs::remove_dir_all(&dir).unwrap();
        // Neither file: the family is unavailable.
        let mut fs = Filesystem::new(&settings("/nonexistent-hostpulse"));
        assert!(matches!(
            fs.collect(&Cycle::now(), &mut Vec::new()),
            Err(CollectError::Unavailable { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let text = crate::collect::source::lossy(&bytes);
            let _ = parse_mountinfo(&text);
            let _ = unescape(&text);
        }

        #[test]
        fn escaped_paths_parse_back(
            id in 0u64..100_000,
            path in "/[a-z \t\n\\\\]{0,20}",
            fstype in "[a-z0-9.]{1,10}",
            source in "[a-z0-9/: ]{0,20}",
        ) {
            let escape = |s: &str| s.replace('\\', r"\134").replace(' ', r"\040").replace('\t', r"\011").replace('\n', r"\012");
            let line = format!("{id} 1 8:1 / {} rw,relatime shared:1 - {fstype} {} rw", escape(&path), escape(&source));
            let m = parse_mountinfo_line(&line).unwrap();
            proptest::prop_assert_eq!(m.mount_point.as_ref(), path.as_str());
            proptest::prop_assert_eq!(m.fstype.as_ref(), fstype.as_str());
            let expect_source = if source.is_empty() { "none" } else { source.as_str() };
            proptest::prop_assert_eq!(m.source.as_ref(), expect_source);
        }
    }
}
