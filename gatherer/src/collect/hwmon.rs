//! `hwmon`: temperature sensors from `/sys/class/hwmon/hwmon*/`.
//!
//! One row per temperature sensor, table `hwmon`, tags:
//!
//! - `chip`: the chip's `name` attribute, `-`, and the basename of its
//!   `device` link's target (`coretemp-coretemp.0`, `nvme-nvme0`); a chip
//!   without a `device` symlink gets its `hwmonN` directory name instead
//!   (`acpitz-hwmon0`), so two chips with the same name never collide.
//! - `sensor`: the `tempN_label` attribute when the driver provides one
//!   (`Package id 0`, `Core 3`, `Composite`), else `tempN`. Labels repeated
//!   within one chip get ` (tempN)` appended to each occurrence.
//!
//! Fields (all in degrees Celsius; the kernel reports millidegrees):
//!
//! - `temperature_celsius`: the current reading (`tempN_input`).
//! - `max_celsius`: the high threshold (`tempN_max`), when the driver has one.
//! - `critical_celsius`: the critical threshold (`tempN_crit`), when present.
//! - `alarm`: 1 when the chip raises its alarm for the sensor (`tempN_alarm`,
//!   else `tempN_crit_alarm`), 0 otherwise; absent when the driver has neither.
//!
//! A sensor whose reading fails (drivers answer EIO or ENODATA for an absent
//! probe) or is not a number is skipped for the cycle. The chip and sensor
//! list, labels and thresholds are read once and re-read every
//! [`REDISCOVER_EVERY`] (or at once when a sensor file vanishes, as on a
//! driver unload); each cycle then reads only the inputs and alarms. Older
//! drivers keep their attributes in `hwmonN/device/`; both places are searched.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{CollectError, ParseError, parse_i64};
use super::{Collector, Cycle, Family, Settings, source};
use crate::row::Row;

/// How often the chips, sensors, labels and thresholds are re-read.
pub const REDISCOVER_EVERY: Duration = Duration::from_secs(60);

/// Parses a temperature attribute (millidegrees Celsius, possibly negative)
/// into degrees Celsius.
pub fn parse_millidegrees(text: &str) -> Result<f64, ParseError> {
    parse_i64("hwmon temperature", text.trim()).map(|m| m as f64 / 1000.0)
}

/// Parses an alarm attribute: `0` is clear, any other integer raised.
pub fn parse_alarm(text: &str) -> Result<bool, ParseError> {
    parse_i64("hwmon alarm", text.trim()).map(|v| v != 0)
}

/// The sensor index of a `tempN_input` file name.
pub fn temp_index(file_name: &str) -> Option<u32> {
    let digits = file_name.strip_prefix("temp")?.strip_suffix("_input")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The `chip` tag from the `name` attribute, the `device` link's basename and
/// the `hwmonN` directory name.
pub fn chip_tag(name: Option<&str>, device: Option<&str>, dir_name: &str) -> String {
    match (name.filter(|n| !n.is_empty()), device) {
        (Some(n), Some(d)) => format!("{n}-{d}"),
        (Some(n), None) => format!("{n}-{dir_name}"),
        (None, Some(d)) => d.to_string(),
        (None, None) => dir_name.to_string(),
    }
}

/// The `sensor` tags of one chip, from `(index, label)` pairs: the label, or
/// `tempN` without one; a label used twice gets ` (tempN)` on every use.
pub fn sensor_names(sensors: &[(u32, Option<String>)]) -> Vec<String> {
    sensors
        .iter()
        .map(
            |(i, label)| match label.as_deref().filter(|l| !l.is_empty()) {
                Some(l) => {
                    let uses = sensors
                        .iter()
                        .filter(|(_, o)| o.as_deref() == Some(l))
                        .count();
                    if uses > 1 {
                        format!("{l} (temp{i})")
                    } else {
                        l.to_string()
                    }
                }
                None => format!("temp{i}"),
            },
        )
        .collect()
}

struct Sensor {
    name: String,
    input: PathBuf,
    alarm: Option<PathBuf>,
    max: Option<f64>,
    crit: Option<f64>,
}

struct Chip {
    tag: String,
    sensors: Vec<Sensor>,
}

/// The `hwmon` collector.
pub struct Hwmon {
    dir: PathBuf,
    chips: Vec<Chip>,
    discovered: Option<Instant>,
    buf: String,
}

impl Hwmon {
    /// A collector reading `class/hwmon` under the configured sysfs.
    pub fn new(settings: &Settings) -> Self {
        Hwmon {
            dir: settings.roots.sys("class/hwmon"),
            chips: Vec::new(),
            discovered: None,
            buf: String::new(),
        }
    }
}

impl Collector for Hwmon {
    fn family(&self) -> Family {
        Family::Hwmon
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        let stale = self
            .discovered
            .is_none_or(|at| cycle.at.saturating_duration_since(at) >= REDISCOVER_EVERY);
        if stale {
            self.chips = discover(&self.dir)?;
            self.discovered = Some(cycle.at);
        }
        let mut vanished = false;
        for chip in &self.chips {
            for s in &chip.sensors {
                let celsius = match read_attr(&s.input, &mut self.buf) {
                    Ok(()) => parse_millidegrees(&self.buf),
                    Err(e) => {
                        vanished |= e.kind() == ErrorKind::NotFound;
                        tracing::debug!(path = %s.input.display(), error = %e, "hwmon sensor unreadable; skipped");
                        continue;
                    }
                };
                let Ok(celsius) = celsius else {
                    tracing::debug!(path = %s.input.display(), "hwmon sensor reading is not a number; skipped");
                    continue;
                };
                let alarm = s.alarm.as_deref().and_then(|p| {
                    read_attr(p, &mut self.buf).ok()?;
                    parse_alarm(&self.buf).ok()
                });
                let mut row = Row::new("hwmon", cycle.ts)
                    .tag("chip", chip.tag.as_str())
                    .tag("sensor", s.name.as_str());
                row.float("temperature_celsius", celsius);
                row.float_opt("max_celsius", s.max);
                row.float_opt("critical_celsius", s.crit);
                row.int_opt("alarm", alarm.map(u64::from));
                out.push(row);
            }
        }
        if vanished {
            self.discovered = None;
        }
        Ok(())
    }
}

/// Reads a small sysfs attribute into `buf`.
fn read_attr(path: &Path, buf: &mut String) -> std::io::Result<()> {
    buf.clear();
    std::fs::File::open(path)?.read_to_string(buf)?;
    Ok(())
}

/// Lists the chips under `dir` (`class/hwmon`) in `hwmonN` order.
fn discover(dir: &Path) -> Result<Vec<Chip>, CollectError> {
    let entries = std::fs::read_dir(dir).map_err(|source| {
        if source.kind() == ErrorKind::NotFound {
            CollectError::Unavailable {
                path: dir.to_path_buf(),
            }
        } else {
            CollectError::Read {
                path: dir.to_path_buf(),
                source,
            }
        }
    })?;
    let mut found: Vec<(u32, String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("hwmon")?.parse().ok()?;
            Some((n, name, e.path()))
        })
        .collect();
    found.sort_unstable_by_key(|(n, _, _)| *n);
    Ok(found
        .into_iter()
        .map(|(_, dir_name, path)| discover_chip(&path, &dir_name))
        .filter(|c| !c.sensors.is_empty())
        .collect())
}

fn discover_chip(path: &Path, dir_name: &str) -> Chip {
    let device_dir = path.join("device");
    let device = std::fs::read_link(&device_dir)
        .ok()
        .and_then(|t| t.file_name().and_then(|n| n.to_str()).map(str::to_string));
    let name = source::read_optional(&path.join("name"))
        .or_else(|| source::read_optional(&device_dir.join("name")));
    let mut indices = temp_inputs(path);
    let attr_dir = if indices.is_empty() {
        indices = temp_inputs(&device_dir);
        device_dir
    } else {
        path.to_path_buf()
    };
    indices.sort_unstable();
    indices.dedup();
    let attr = |i: u32, what: &str| attr_dir.join(format!("temp{i}_{what}"));
    let labelled: Vec<(u32, Option<String>)> = indices
        .iter()
        .map(|&i| (i, source::read_optional(&attr(i, "label"))))
        .collect();
    let names = sensor_names(&labelled);
    let threshold =
        |p: PathBuf| source::read_optional(&p).and_then(|t| parse_millidegrees(&t).ok());
    let sensors = indices
        .iter()
        .zip(names)
        .map(|(&i, name)| Sensor {
            name,
            input: attr(i, "input"),
            alarm: [attr(i, "alarm"), attr(i, "crit_alarm")]
                .into_iter()
                .find(|p| p.exists()),
            max: threshold(attr(i, "max")),
            crit: threshold(attr(i, "crit")),
        })
        .collect();
    Chip {
        tag: chip_tag(name.as_deref(), device.as_deref(), dir_name),
        sensors,
    }
}

/// The indices of the `tempN_input` files in `dir`.
fn temp_inputs(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| temp_index(e.file_name().to_str()?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roots::Roots;
    use crate::row::Value;

    const EDGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/edge-psi-hwmon");

    fn settings(dir: &str) -> Settings {
        Settings {
            roots: Roots::under(dir),
            ..Settings::default()
        }
    }

    #[test]
    fn parses_attributes() {
        assert_eq!(parse_millidegrees("45000\n"), Ok(45.0));
        assert_eq!(parse_millidegrees("-12500"), Ok(-12.5));
        assert!(parse_millidegrees("garbage").is_err());
        assert!(parse_millidegrees("").is_err());
        assert_eq!(parse_alarm("1\n"), Ok(true));
        assert_eq!(parse_alarm("0"), Ok(false));
        assert!(parse_alarm("on").is_err());
        assert_eq!(temp_index("temp12_input"), Some(12));
        assert_eq!(temp_index("temp_input"), None);
        assert_eq!(temp_index("temp1_max"), None);
        assert_eq!(temp_index("temp+1_input"), None);
        assert_eq!(temp_index("in0_input"), None);
    }

    #[test]
    fn chip_tags_never_collide() {
        assert_eq!(
            chip_tag(Some("coretemp"), Some("coretemp.0"), "hwmon1"),
            "coretemp-coretemp.0"
        );
        assert_eq!(chip_tag(Some("acpitz"), None, "hwmon0"), "acpitz-hwmon0");
        assert_eq!(chip_tag(None, Some("nvme0"), "hwmon2"), "nvme0");
        assert_eq!(chip_tag(Some(""), None, "hwmon7"), "hwmon7");
    }

    #[test]
    fn repeated_labels_are_told_apart() {
        let names = sensor_names(&[
            (1, Some("SYSTIN".into())),
            (7, Some("PECI Agent 0".into())),
            (8, Some("PECI Agent 0".into())),
            (9, None),
            (10, Some(String::new())),
        ]);
        assert_eq!(
            names,
            [
                "SYSTIN",
                "PECI Agent 0 (temp7)",
                "PECI Agent 0 (temp8)",
                "temp9",
                "temp10"
            ]
        );
    }

    fn sensor<'a>(out: &'a [Row], chip: &str, sensor: &str) -> &'a Row {
        out.iter()
            .find(|r| r.tag_value("chip") == Some(chip) && r.tag_value("sensor") == Some(sensor))
            .unwrap_or_else(|| panic!("no {chip}/{sensor}"))
    }

    #[test]
    fn collects_the_edge_tree_twice() {
        let mut h = Hwmon::new(&settings(EDGE));
        let t0 = Cycle::now();
        let mut out = Vec::new();
        h.collect(&t0, &mut out).unwrap();
        let tags: Vec<_> = out
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r.tag_value("chip").unwrap(),
                    r.tag_value("sensor").unwrap()
                )
            })
            .collect();
        assert_eq!(
            tags,
            [
                "acpitz-hwmon0/temp1",
                "coretemp-coretemp.0/Package id 0",
                "coretemp-coretemp.0/Core 0",
                "coretemp-coretemp.0/Core 1",
                "coretemp-coretemp.0/Core 4",
                "nvme-hwmon2/Composite",
                "nvme-hwmon2/Sensor 1",
                "nct6798-hwmon3/SYSTIN",
                "nct6798-hwmon3/CPUTIN",
                "nct6798-hwmon3/PECI Agent 0 (temp7)",
                "nct6798-hwmon3/PECI Agent 0 (temp8)",
                "acpitz-hwmon4/temp1",
                "w83627ehf-hwmon5/temp1",
            ]
        );
        assert!(out.iter().all(|r| r.table == "hwmon"));
        let pkg = sensor(&out, "coretemp-coretemp.0", "Package id 0");
        assert_eq!(pkg.field("temperature_celsius"), Some(Value::Float(52.0)));
        assert_eq!(pkg.field("max_celsius"), Some(Value::Float(84.0)));
        assert_eq!(pkg.field("critical_celsius"), Some(Value::Float(100.0)));
        assert_eq!(pkg.field("alarm"), Some(Value::Int(0)));
        let composite = sensor(&out, "nvme-hwmon2", "Composite");
        assert_eq!(
            composite.field("temperature_celsius"),
            Some(Value::Float(38.85))
        );
        assert_eq!(composite.field("alarm"), Some(Value::Int(1)));
        // The nvme's second sensor has no thresholds or alarm files.
        let s1 = sensor(&out, "nvme-hwmon2", "Sensor 1");
        assert_eq!(s1.fields.len(), 1);
        // A garbled max is omitted; a negative reading survives.
        let systin = sensor(&out, "nct6798-hwmon3", "SYSTIN");
        assert_eq!(systin.field("max_celsius"), None);
        assert_eq!(
            systin.field("temperature_celsius"),
            Some(Value::Float(-3.5))
        );

        let t1 = Cycle {
            ts: t0.ts + 2_000_000_000,
            at: t0.at + Duration::from_secs(2),
        };
        let mut again = Vec::new();
        h.collect(&t1, &mut again).unwrap();
        assert_eq!(again.len(), out.len());
        assert!(again.iter().all(|r| r.ts == t1.ts));
    }

    #[test]
    fn rediscovers_when_a_sensor_vanishes_and_on_schedule() {
        let dir = std::env::temp_dir().join(format!("hostpulse-hwmon-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let chip = dir.join("sys/class/hwmon/hwmon0");
        std::fs::create_dir_all(&chip).unwrap();
        std::fs::write(chip.join("name"), "k10temp\n").unwrap();
        std::fs::write(chip.join("temp1_input"), "40000\n").unwrap();
        std::os::unix::fs::symlink(
            "../../../devices/pci0000:00/0000:00:18.3",
            chip.join("device"),
        )
        .unwrap();
        let mut h = Hwmon::new(&settings(dir.to_str().unwrap()));
        let t0 = Cycle::now();
        let mut out = Vec::new();
        h.collect(&t0, &mut out).unwrap();
        assert_eq!(out[0].tag_value("chip"), Some("k10temp-0000:00:18.3"));
        std::fs::remove_file(chip.join("temp1_input")).unwrap();
        std::fs::write(chip.join("temp2_input"), "41000\n").unwrap();
        out.clear();
        h.collect(&t0, &mut out).unwrap();
        assert!(out.is_empty());
        out.clear();
        h.collect(&t0, &mut out).unwrap();
        assert_eq!(out[0].tag_value("sensor"), Some("temp2"));
        // A new chip appears: noticed after REDISCOVER_EVERY.
        let chip1 = dir.join("sys/class/hwmon/hwmon1");
        std::fs::create_dir_all(&chip1).unwrap();
        std::fs::write(chip1.join("temp1_input"), "30000\n").unwrap();
        out.clear();
        h.collect(&t0, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        let later = Cycle {
            ts: t0.ts,
            at: t0.at + REDISCOVER_EVERY,
        };
        out.clear();
        h.collect(&later, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].tag_value("chip"), Some("hwmon1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_hwmon_class_is_unavailable() {
        let mut h = Hwmon::new(&settings(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/debian12-vm"
        )));
        assert!(matches!(
            h.collect(&Cycle::now(), &mut Vec::new()),
            Err(CollectError::Unavailable { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let text = source::lossy(&bytes);
            let _ = parse_millidegrees(&text);
            let _ = parse_alarm(&text);
            let _ = temp_index(&text);
        }

        #[test]
        fn millidegrees_parse_back(m in -300_000i64..300_000) {
            proptest::prop_assert_eq!(parse_millidegrees(&format!("{m}\n")), Ok(m as f64 / 1000.0));
        }
    }
}
