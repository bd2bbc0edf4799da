//! `network`: per-interface traffic counters from `/proc/net/dev`.
//!
//! Table `network`, one row per interface per cycle, tagged `interface` (the
//! kernel's name, e.g. `eth0`, `eth0.100`, `br-1a2b3c4d5e6f`; bytes that are not
//! UTF-8 appear as U+FFFD). Interfaces matching `--network-exclude` are skipped.
//!
//! The file shows the interfaces of the network namespace of the process that
//! reads it: run the gatherer in the host's network namespace to see the
//! host's interfaces.
//!
//! Every field is a counter reported twice: as `NAME_total` (exact integer since
//! the interface was created or its driver last reset its statistics) and, from
//! the second cycle an interface is seen on, as `NAME_per_second` (float, the
//! average rate over the last interval; absent for an interval in which the
//! counter went backwards). `NAME` is one of:
//!
//! - `rx_bytes`, `tx_bytes`: bytes received / transmitted.
//! - `rx_packets`, `tx_packets`: packets received / transmitted.
//! - `rx_errors`, `tx_errors`: packets the driver reported as bad (sum of the
//!   detailed error kinds).
//! - `rx_dropped`, `tx_dropped`: packets dropped for lack of resources or by the
//!   stack (no buffer, unknown protocol, qdisc drops on transmit).
//! - `rx_fifo_errors`, `tx_fifo_errors`: device FIFO overruns / underruns.
//! - `rx_frame_errors`: frame alignment (CRC/framing) errors on receive.
//! - `rx_compressed`, `tx_compressed`: compressed packets (CSLIP/PPP only).
//! - `rx_multicast`: multicast packets received.
//! - `tx_collisions`: collisions detected on transmit (half-duplex media).
//! - `tx_carrier_errors`: carrier losses on transmit.

use super::error::{CollectError, ParseError};
use super::patterns::Patterns;
use super::rates::Rates;
use super::{Collector, Cycle, Family, Settings, source};
use crate::row::Row;

/// How many counters a `/proc/net/dev` line carries (8 receive, 8 transmit).
pub const COUNTERS: usize = 16;

/// The counter names, in the kernel's column order.
pub const COUNTER_NAMES: [&str; COUNTERS] = [
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_dropped",
    "rx_fifo_errors",
    "rx_frame_errors",
    "rx_compressed",
    "rx_multicast",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_dropped",
    "tx_fifo_errors",
    "tx_collisions",
    "tx_carrier_errors",
    "tx_compressed",
];

const TOTAL_FIELDS: [&str; COUNTERS] = [
    "rx_bytes_total",
    "rx_packets_total",
    "rx_errors_total",
    "rx_dropped_total",
    "rx_fifo_errors_total",
    "rx_frame_errors_total",
    "rx_compressed_total",
    "rx_multicast_total",
    "tx_bytes_total",
    "tx_packets_total",
    "tx_errors_total",
    "tx_dropped_total",
    "tx_fifo_errors_total",
    "tx_collisions_total",
    "tx_carrier_errors_total",
    "tx_compressed_total",
];

const RATE_FIELDS: [&str; COUNTERS] = [
    "rx_bytes_per_second",
    "rx_packets_per_second",
    "rx_errors_per_second",
    "rx_dropped_per_second",
    "rx_fifo_errors_per_second",
    "rx_frame_errors_per_second",
    "rx_compressed_per_second",
    "rx_multicast_per_second",
    "tx_bytes_per_second",
    "tx_packets_per_second",
    "tx_errors_per_second",
    "tx_dropped_per_second",
    "tx_fifo_errors_per_second",
    "tx_collisions_per_second",
    "tx_carrier_errors_per_second",
    "tx_compressed_per_second",
];

/// One interface's line of `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceCounters<'a> {
    /// The interface name, borrowed from the parsed text.
    pub name: &'a str,
    /// The counters in [`COUNTER_NAMES`] order.
    pub counters: [u64; COUNTERS],
}

/// Parses `/proc/net/dev`.
///
/// procfs's `DeviceStatus` splits lines on whitespace, which breaks when a
/// 15-character name is glued to its first counter (`verylongifname0:12345`);
/// this parser splits each line at its first `:` instead (a name cannot
/// contain `:` or whitespace). Lines without `:` must be the column headers
/// (they contain `|`); anything else, a line with fewer than 16 counters or a
/// counter that is not a number means the file is not what we think and fails
/// the whole parse. Columns after the 16th (a future kernel) are ignored.
pub fn parse_net_dev(text: &str) -> Result<Vec<InterfaceCounters<'_>>, ParseError> {
    let mut out = Vec::new();
    let mut saw_header = false;
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            if line.contains('|') {
                saw_header = true;
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            return Err(ParseError::missing(format!(
                "':' after the interface name in line {:?}",
                cut(line)
            )));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ParseError::missing(format!(
                "interface name in line {:?}",
                cut(line)
            )));
        }
        let mut counters = [0u64; COUNTERS];
        let mut columns = rest.split_ascii_whitespace();
        for (slot, field) in counters.iter_mut().zip(COUNTER_NAMES) {
            let column = columns
                .next()
                .ok_or_else(|| ParseError::missing(format!("{field} of interface {name}")))?;
            // The error text is only built on failure: no allocation per column.
            *slot = column.parse().map_err(|_| {
                ParseError::bad_number(format!("{field} of interface {name}"), column)
            })?;
        }
        out.push(InterfaceCounters { name, counters });
    }
    if !saw_header && out.is_empty() {
        return Err(ParseError::missing("the Inter-|Receive|Transmit header"));
    }
    Ok(out)
}

/// At most 80 bytes of a line, for error messages.
fn cut(line: &str) -> &str {
    let mut end = line.len().min(80);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// The `network` collector.
pub struct Network {
    path: source::KernelFile,
    exclude: Patterns,
    buf: String,
    rates: Rates<String>,
}

impl Network {
    /// A collector reading `net/dev` under the configured procfs.
    pub fn new(settings: &Settings) -> Self {
        Network {
            path: source::KernelFile::new(settings.roots.proc("net/dev")),
            exclude: settings.network_exclude.clone(),
            buf: String::new(),
            rates: Rates::default(),
        }
    }
}

impl Collector for Network {
    fn family(&self) -> Family {
        Family::Network
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        self.path.read_into(&mut self.buf)?;
        let interfaces = parse_net_dev(&self.buf).map_err(|source| CollectError::Parse {
            path: self.path.path().to_path_buf(),
            source,
        })?;
        for iface in interfaces {
            if self.exclude.matches(iface.name) {
                continue;
            }
            let rates = self.rates.observe(iface.name, cycle.at, &iface.counters);
            let mut row = Row::new("network", cycle.ts).tag("interface", iface.name);
            row.fields.reserve(2 * COUNTERS);
            let fields = TOTAL_FIELDS.iter().zip(RATE_FIELDS).zip(iface.counters);
            for (i, ((&total, rate), value)) in fields.enumerate() {
                row.int(total, value);
                row.float_opt(rate, rates.get(i).copied().flatten());
            }
            out.push(row);
        }
        self.rates.sweep();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::roots::Roots;
    use crate::row::Value;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    use crate::collect::fixtures::text as fixture;

    #[test]
    fn parses_the_captured_net_dev() {
        let text = fixture("debian12-vm/proc/net/dev");
        let ifaces = parse_net_dev(&text).unwrap();
        let names: Vec<_> = ifaces.iter().map(|i| i.name).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
        let eth0 = &ifaces[3];
        assert_eq!(eth0.counters[0], 32_005_407); // rx_bytes
        assert_eq!(eth0.counters[1], 1193); // rx_packets
        assert_eq!(eth0.counters[8], 75_665); // tx_bytes
        assert_eq!(eth0.counters[9], 783); // tx_packets
        assert_eq!(ifaces[0].counters[0], 3193);
    }

    #[test]
    fn parses_the_odd_interfaces_fixture() {
        let text = fixture("edge-odd-interfaces/proc/net/dev");
        let ifaces = parse_net_dev(&text).unwrap();
        let names: Vec<_> = ifaces.iter().map(|i| i.name).collect();
        assert_eq!(
            names,
            [
                "lo",
                "verylongifname0",
                "eth0.100",
                "br-1a2b3c4d5e6f",
                "wg0",
                "caf\u{fffd}0",
                "huge0",
            ]
        );
        assert_eq!(ifaces[1].counters[0], 12345);
        assert_eq!(ifaces[1].counters[15], 16);
        assert_eq!(ifaces[6].counters, [u64::MAX; COUNTERS]);
    }

    #[test]
    fn a_long_name_glued_to_its_first_counter_is_split_at_the_colon() {
        let text = "Inter-|   Receive\n face |bytes\nverylongifname0:12345 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let ifaces = parse_net_dev(text).unwrap();
        assert_eq!(ifaces[0].name, "verylongifname0");
        assert_eq!(ifaces[0].counters[0], 12345);
        assert_eq!(ifaces[0].counters[15], 16);
    }

    #[test]
    fn extra_columns_of_a_future_kernel_are_ignored() {
        let text = "Inter-|\n face |\n eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\n";
        let ifaces = parse_net_dev(text).unwrap();
        assert_eq!(ifaces[0].counters[15], 16);
    }

    #[test]
    fn a_short_or_garbled_line_fails_the_whole_parse_naming_the_interface() {
        let short = "Inter-|\n face |\n lo: 1 2 3\n eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let err = parse_net_dev(short).unwrap_err();
        assert!(err.to_string().contains("interface lo"), "{err}");

        let bad = "Inter-|\n face |\n eth1: 1 2 x 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let err = parse_net_dev(bad).unwrap_err();
        assert!(err.to_string().contains("interface eth1"), "{err}");

        let negative = "Inter-|\n face |\n eth1: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        assert!(parse_net_dev(negative).is_err());
        let overflow =
            "Inter-|\n face |\n eth1: 18446744073709551616 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        assert!(parse_net_dev(overflow).is_err());
    }

    #[test]
    fn garbage_and_empty_files_are_rejected_but_a_header_alone_is_no_interfaces() {
        assert!(parse_net_dev("").is_err());
        assert!(parse_net_dev("hello world\n").is_err());
        assert!(parse_net_dev(": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").is_err());
        assert_eq!(parse_net_dev("Inter-|\n face |\n").unwrap(), vec![]);
    }

    fn run(dir: &str, settings: Settings) -> (Vec<Row>, Vec<Row>, Network) {
        let settings = Settings {
            roots: Roots::under(format!("{FIXTURES}/{dir}")),
            ..settings
        };
        let mut network = Network::new(&settings);
        let t0 = Cycle::now();
        let t1 = Cycle {
            ts: t0.ts + 2_000_000_000,
            at: t0.at + Duration::from_secs(2),
        };
        let mut first = Vec::new();
        network.collect(&t0, &mut first).unwrap();
        let mut second = Vec::new();
        network.collect(&t1, &mut second).unwrap();
        (first, second, network)
    }

    #[test]
    fn collects_twice_with_rates_only_on_the_second_cycle() {
        let (first, second, network) = run("debian12-vm", Settings::default());
        assert_eq!(first.len(), 4);
        let eth0 = first
            .iter()
            .find(|r| r.tag_value("interface") == Some("eth0"))
            .unwrap();
        assert_eq!(eth0.table, "network");
        assert_eq!(eth0.tags.len(), 1);
        assert_eq!(eth0.field("rx_bytes_total"), Some(Value::Int(32_005_407)));
        assert_eq!(eth0.field("tx_packets_total"), Some(Value::Int(783)));
        assert_eq!(eth0.fields.len(), COUNTERS);
        assert!(eth0.field("rx_bytes_per_second").is_none());

        let eth0 = &second[3];
        assert_eq!(eth0.fields.len(), 2 * COUNTERS);
        assert_eq!(eth0.field("rx_bytes_per_second"), Some(Value::Float(0.0)));
        assert_eq!(
            eth0.field("tx_carrier_errors_per_second"),
            Some(Value::Float(0.0))
        );
        assert_eq!(network.rates.len(), 4);
    }

    #[test]
    fn excluded_interfaces_are_skipped_and_odd_names_are_tagged() {
        let settings = Settings {
            network_exclude: Patterns::parse("lo,br-*"),
            ..Settings::default()
        };
        let (first, second, network) = run("edge-odd-interfaces", settings);
        let names: Vec<_> = first
            .iter()
            .filter_map(|r| r.tag_value("interface"))
            .collect();
        assert_eq!(
            names,
            [
                "verylongifname0",
                "eth0.100",
                "wg0",
                "caf\u{fffd}0",
                "huge0"
            ]
        );
        let huge = &second[4];
        assert_eq!(huge.field("rx_bytes_total"), Some(Value::Int(u64::MAX)));
        assert_eq!(huge.field("rx_bytes_per_second"), Some(Value::Float(0.0)));
        assert_eq!(network.rates.len(), 5);
    }

    #[test]
    fn a_missing_file_is_unavailable() {
        let settings = Settings {
            roots: Roots::under("/nonexistent"),
            ..Settings::default()
        };
        let err = Network::new(&settings)
            .collect(&Cycle::now(), &mut Vec::new())
            .unwrap_err();
        assert!(matches!(err, CollectError::Unavailable { .. }));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_net_dev(&source::lossy(&bytes));
        }

        #[test]
        fn random_counters_parse_back(
            name in "[a-zA-Z0-9._@-]{1,15}",
            counters in proptest::array::uniform16(proptest::num::u64::ANY),
            glued in proptest::bool::ANY,
        ) {
            let numbers: Vec<String> = counters.iter().map(u64::to_string).collect();
            let sep = if glued { "" } else { " " };
            let text = format!(
                "Inter-|   Receive |  Transmit\n face |bytes | bytes\n{name}:{sep}{}\n",
                numbers.join("   ")
            );
            let ifaces = parse_net_dev(&text).unwrap();
            proptest::prop_assert_eq!(ifaces.len(), 1);
            proptest::prop_assert_eq!(ifaces[0].name, name.as_str());
            proptest::prop_assert_eq!(ifaces[0].counters, counters);
        }
    }
}
