//! `netstat`: TCP/UDP protocol counters and socket counts.
//!
//! Reads `/proc/net/snmp` (required: without it the family is disabled),
//! `/proc/net/netstat` (the `TcpExt` counters) and `/proc/net/sockstat` (socket
//! counts); when one of the last two is absent its fields are left out. Like
//! `/proc/net/dev`, these files describe the network namespace of the reading
//! process. Table `netstat`, one row per cycle, no tags. A field whose key this
//! kernel does not print is omitted.
//!
//! Counters are reported as `NAME_total` (exact integer since boot) and, from
//! the second cycle on, `NAME_per_second` (float, average over the interval):
//!
//! - `tcp_active_opens`: connections opened by this host (SYN sent; `Tcp ActiveOpens`).
//! - `tcp_passive_opens`: connections accepted from peers (`Tcp PassiveOpens`).
//! - `tcp_attempt_fails`: connection attempts that failed (`Tcp AttemptFails`).
//! - `tcp_established_resets`: established connections reset (`Tcp EstabResets`).
//! - `tcp_in_segments`: segments received, including erroneous ones (`Tcp InSegs`).
//! - `tcp_out_segments`: segments sent, excluding retransmissions (`Tcp OutSegs`).
//! - `tcp_retransmitted_segments`: segments retransmitted (`Tcp RetransSegs`).
//! - `tcp_in_errors`: segments received with errors such as bad checksums (`Tcp InErrs`).
//! - `tcp_resets_sent`: segments sent with the RST flag (`Tcp OutRsts`).
//! - `tcp_listen_overflows`: connections dropped because a listener's accept
//!   queue was full (`TcpExt ListenOverflows`).
//! - `tcp_listen_drops`: connection requests dropped by listeners for any
//!   reason, overflows included (`TcpExt ListenDrops`).
//! - `tcp_timeouts`: retransmission timer expirations (`TcpExt TCPTimeouts`).
//! - `tcp_syn_retransmits`: SYN and SYN-ACK retransmissions (`TcpExt TCPSynRetrans`).
//! - `udp_in_datagrams`: datagrams delivered to sockets (`Udp InDatagrams`).
//! - `udp_out_datagrams`: datagrams sent (`Udp OutDatagrams`).
//! - `udp_no_ports`: datagrams received for a port nobody listens on (`Udp NoPorts`).
//! - `udp_in_errors`: datagrams received but not delivered, buffer errors
//!   included (`Udp InErrors`).
//! - `udp_receive_buffer_errors`: datagrams dropped because a socket's receive
//!   buffer was full (`Udp RcvbufErrors`).
//! - `udp_send_buffer_errors`: datagrams not sent for lack of send buffer (`Udp SndbufErrors`).
//!
//! Gauges (integers, the value now):
//!
//! - `tcp_established`: TCP connections in ESTABLISHED or CLOSE-WAIT (`Tcp CurrEstab`).
//! - `sockets_used`: sockets of all kinds allocated (`sockets: used`).
//! - `tcp_sockets_in_use`: TCP sockets in use, listeners included (`TCP: inuse`).
//! - `tcp_sockets_orphaned`: TCP sockets no longer attached to a process (`TCP: orphan`).
//! - `tcp_sockets_time_wait`: TCP sockets in TIME-WAIT (`TCP: tw`).
//! - `tcp_sockets_allocated`: TCP sockets allocated, in any state (`TCP: alloc`).
//! - `tcp_memory_pages`: memory used by TCP buffers, in pages (`TCP: mem`;
//!   compare with the `net.ipv4.tcp_mem` limits, also in pages).
//! - `udp_sockets_in_use`: UDP sockets in use (`UDP: inuse`).
//! - `udp_memory_pages`: memory used by UDP buffers, in pages (`UDP: mem`).

use std::path::Path;

use super::error::{CollectError, ParseError};
use super::rates::Rates;
use super::{Collector, Cycle, Family, Settings, source};
use crate::row::Row;

/// One `Name: key key ...` block of `/proc/net/snmp`, `/proc/net/netstat` or
/// `/proc/net/sockstat`, with its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section<'a> {
    /// The section name before the colon (`Tcp`, `TcpExt`, `TCP`, `sockets`).
    pub name: &'a str,
    /// Keys and values in file order. Values are `i128` so that both the
    /// kernel's unsigned 64-bit counters and its few signed values
    /// (`Tcp MaxConn` is `-1`) fit.
    pub entries: Vec<(&'a str, i128)>,
}

/// Finds `key` of the first section called `section`.
pub fn lookup(sections: &[Section<'_>], section: &str, key: &str) -> Option<i128> {
    sections
        .iter()
        .find(|s| s.name == section)?
        .entries
        .iter()
        .find(|(k, _)| *k == key)
        .map(|&(_, v)| v)
}

fn parse_value(section: &str, key: &str, text: &str) -> Result<i128, ParseError> {
    text.parse()
        .map_err(|_| ParseError::bad_number(format!("{section} {key}"), text))
}

/// Parses the header/value line pairs of `/proc/net/snmp` and
/// `/proc/net/netstat`:
///
/// ```text
/// Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens ...
/// Tcp: 1 200 120000 -1 12 ...
/// ```
///
/// Each header line must be followed by a value line with the same name and
/// as many values as keys; a truncated pair, a mismatch or a value that is not
/// an integer rejects the file. Blank lines are skipped.
pub fn parse_pairs(text: &str) -> Result<Vec<Section<'_>>, ParseError> {
    let mut out = Vec::new();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    while let Some(header) = lines.next() {
        let (name, keys) = header
            .split_once(':')
            .ok_or_else(|| ParseError::missing(format!("':' in header line {header:?}")))?;
        let name = name.trim();
        let values_line = lines
            .next()
            .ok_or_else(|| ParseError::missing(format!("the {name} value line")))?;
        let (value_name, values) = values_line
            .split_once(':')
            .ok_or_else(|| ParseError::missing(format!("the {name} value line")))?;
        if value_name.trim() != name {
            return Err(ParseError::missing(format!(
                "the {name} value line (found {:?})",
                value_name.trim()
            )));
        }
        let mut keys = keys.split_ascii_whitespace();
        let mut values = values.split_ascii_whitespace();
        let mut entries = Vec::new();
        loop {
            match (keys.next(), values.next()) {
                (Some(k), Some(v)) => entries.push((k, parse_value(name, k, v)?)),
                (None, None) => break,
                (Some(k), None) => return Err(ParseError::missing(format!("{name} {k} value"))),
                (None, Some(_)) => {
                    return Err(ParseError::missing(format!("{name} key for extra value")));
                }
            }
        }
        out.push(Section { name, entries });
    }
    Ok(out)
}

/// Parses `/proc/net/sockstat`: one section per line, then `key value` pairs
/// (`TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 206`). A line without `:`, a key
/// without a value or a value that is not an integer rejects the file.
pub fn parse_sockstat(text: &str) -> Result<Vec<Section<'_>>, ParseError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (name, rest) = line
            .split_once(':')
            .ok_or_else(|| ParseError::missing(format!("':' in line {line:?}")))?;
        let name = name.trim();
        let mut tokens = rest.split_ascii_whitespace();
        let mut entries = Vec::new();
        while let Some(key) = tokens.next() {
            let value = tokens
                .next()
                .ok_or_else(|| ParseError::missing(format!("{name} {key} value")))?;
            entries.push((key, parse_value(name, key, value)?));
        }
        out.push(Section { name, entries });
    }
    Ok(out)
}

/// Which file a value comes from.
#[derive(Debug, Clone, Copy)]
enum File {
    Snmp,
    Netstat,
    Sockstat,
}

/// `(file, section, key, total field, rate field)` of every counter.
#[rustfmt::skip]
const COUNTERS: [(File, &str, &str, &str, &str); 19] = [
    (File::Snmp, "Tcp", "ActiveOpens", "tcp_active_opens_total", "tcp_active_opens_per_second"),
    (File::Snmp, "Tcp", "PassiveOpens", "tcp_passive_opens_total", "tcp_passive_opens_per_second"),
    (File::Snmp, "Tcp", "AttemptFails", "tcp_attempt_fails_total", "tcp_attempt_fails_per_second"),
    (File::Snmp, "Tcp", "EstabResets", "tcp_established_resets_total", "tcp_established_resets_per_second"),
    (File::Snmp, "Tcp", "InSegs", "tcp_in_segments_total", "tcp_in_segments_per_second"),
    (File::Snmp, "Tcp", "OutSegs", "tcp_out_segments_total", "tcp_out_segments_per_second"),
    (File::Snmp, "Tcp", "RetransSegs", "tcp_retransmitted_segments_total", "tcp_retransmitted_segments_per_second"),
    (File::Snmp, "Tcp", "InErrs", "tcp_in_errors_total", "tcp_in_errors_per_second"),
    (File::Snmp, "Tcp", "OutRsts", "tcp_resets_sent_total", "tcp_resets_sent_per_second"),
    (File::Netstat, "TcpExt", "ListenOverflows", "tcp_listen_overflows_total", "tcp_listen_overflows_per_second"),
    (File::Netstat, "TcpExt", "ListenDrops", "tcp_listen_drops_total", "tcp_listen_drops_per_second"),
    (File::Netstat, "TcpExt", "TCPTimeouts", "tcp_timeouts_total", "tcp_timeouts_per_second"),
    (File::Netstat, "TcpExt", "TCPSynRetrans", "tcp_syn_retransmits_total", "tcp_syn_retransmits_per_second"),
    (File::Snmp, "Udp", "InDatagrams", "udp_in_datagrams_total", "udp_in_datagrams_per_second"),
    (File::Snmp, "Udp", "OutDatagrams", "udp_out_datagrams_total", "udp_out_datagrams_per_second"),
    (File::Snmp, "Udp", "NoPorts", "udp_no_ports_total", "udp_no_ports_per_second"),
    (File::Snmp, "Udp", "InErrors", "udp_in_errors_total", "udp_in_errors_per_second"),
    (File::Snmp, "Udp", "RcvbufErrors", "udp_receive_buffer_errors_total", "udp_receive_buffer_errors_per_second"),
    (File::Snmp, "Udp", "SndbufErrors", "udp_send_buffer_errors_total", "udp_send_buffer_errors_per_second"),
];

/// `(file, section, key, field)` of every gauge.
const GAUGES: [(File, &str, &str, &str); 9] = [
    (File::Snmp, "Tcp", "CurrEstab", "tcp_established"),
    (File::Sockstat, "sockets", "used", "sockets_used"),
    (File::Sockstat, "TCP", "inuse", "tcp_sockets_in_use"),
    (File::Sockstat, "TCP", "orphan", "tcp_sockets_orphaned"),
    (File::Sockstat, "TCP", "tw", "tcp_sockets_time_wait"),
    (File::Sockstat, "TCP", "alloc", "tcp_sockets_allocated"),
    (File::Sockstat, "TCP", "mem", "tcp_memory_pages"),
    (File::Sockstat, "UDP", "inuse", "udp_sockets_in_use"),
    (File::Sockstat, "UDP", "mem", "udp_memory_pages"),
];

/// The values of one cycle, `None` where the kernel does not print the key
/// (or prints a negative value where a count is expected).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetstatSample {
    /// Counters in the order of the module documentation.
    pub counters: [Option<u64>; 19],
    /// Gauges in the order of the module documentation.
    pub gauges: [Option<u64>; 9],
}

impl NetstatSample {
    /// Picks the reported values out of the parsed files; `netstat` and
    /// `sockstat` are `None` when their file is absent.
    pub fn extract(
        snmp: &[Section<'_>],
        netstat: Option<&[Section<'_>]>,
        sockstat: Option<&[Section<'_>]>,
    ) -> Self {
        let get = |file: File, section: &str, key: &str| {
            let sections = match file {
                File::Snmp => Some(snmp),
                File::Netstat => netstat,
                File::Sockstat => sockstat,
            }?;
            u64::try_from(lookup(sections, section, key)?).ok()
        };
        let mut sample = NetstatSample::default();
        for (slot, &(file, section, key, ..)) in sample.counters.iter_mut().zip(&COUNTERS) {
            *slot = get(file, section, key);
        }
        for (slot, &(file, section, key, _)) in sample.gauges.iter_mut().zip(&GAUGES) {
            *slot = get(file, section, key);
        }
        sample
    }
}

/// The `netstat` collector.
pub struct Netstat {
    snmp_path: source::KernelFile,
    netstat_path: source::KernelFile,
    sockstat_path: source::KernelFile,
    snmp_buf: String,
    netstat_buf: String,
    sockstat_buf: String,
    /// Keyed by the bit mask of the counters present, so that a counter
    /// appearing or vanishing (a file that comes and goes) restarts the rates
    /// instead of pairing values of different counters.
    rates: Rates<u32>,
}

impl Netstat {
    /// A collector reading `net/snmp`, `net/netstat` and `net/sockstat` under
    /// the configured procfs.
    pub fn new(settings: &Settings) -> Self {
        Netstat {
            snmp_path: source::KernelFile::new(settings.roots.proc("net/snmp")),
            netstat_path: source::KernelFile::new(settings.roots.proc("net/netstat")),
            sockstat_path: source::KernelFile::new(settings.roots.proc("net/sockstat")),
            snmp_buf: String::new(),
            netstat_buf: String::new(),
            sockstat_buf: String::new(),
            rates: Rates::default(),
        }
    }
}

/// Reads an optional file: `Ok(false)` when it does not exist.
fn read_present(file: &mut source::KernelFile, buf: &mut String) -> Result<bool, CollectError> {
    match file.read_into(buf) {
        Ok(()) => Ok(true),
        Err(CollectError::Unavailable { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

fn parsed<T>(path: &Path, result: Result<T, ParseError>) -> Result<T, CollectError> {
    result.map_err(|source| CollectError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

impl Collector for Netstat {
    fn family(&self) -> Family {
        Family::Netstat
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        self.snmp_path.read_into(&mut self.snmp_buf)?;
        let have_netstat = read_present(&mut self.netstat_path, &mut self.netstat_buf)?;
        let have_sockstat = read_present(&mut self.sockstat_path, &mut self.sockstat_buf)?;

        let snmp = parsed(self.snmp_path.path(), parse_pairs(&self.snmp_buf))?;
        let netstat = if have_netstat {
            Some(parsed(
                self.netstat_path.path(),
                parse_pairs(&self.netstat_buf),
            )?)
        } else {
            None
        };
        let sockstat = if have_sockstat {
            Some(parsed(
                self.sockstat_path.path(),
                parse_sockstat(&self.sockstat_buf),
            )?)
        } else {
            None
        };
        let sample = NetstatSample::extract(&snmp, netstat.as_deref(), sockstat.as_deref());

        let mut mask = 0u32;
        let mut values = [0u64; COUNTERS.len()];
        let mut present = 0;
        for (i, counter) in sample.counters.iter().enumerate() {
            if let (Some(v), Some(slot)) = (counter, values.get_mut(present)) {
                *slot = *v;
                present += 1;
                mask |= 1 << i;
            }
        }
        let rates = self
            .rates
            .observe(&mask, cycle.at, values.get(..present).unwrap_or(&[]));
        let mut rates = rates.iter();

        let mut row = Row::new("netstat", cycle.ts);
        for (counter, &(.., total, rate)) in sample.counters.iter().zip(&COUNTERS) {
            if let Some(v) = *counter {
                row.int(total, v);
                row.float_opt(rate, rates.next().copied().flatten());
            }
        }
        for (gauge, &(.., name)) in sample.gauges.iter().zip(&GAUGES) {
            row.int_opt(name, *gauge);
        }
        out.push(row);
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
    fn parses_the_captured_files() {
        let snmp_text = fixture("debian12-vm/proc/net/snmp");
        let snmp = parse_pairs(&snmp_text).unwrap();
        assert_eq!(lookup(&snmp, "Tcp", "MaxConn"), Some(-1));
        assert_eq!(lookup(&snmp, "Tcp", "InSegs"), Some(1198));
        assert_eq!(lookup(&snmp, "Udp", "OutDatagrams"), Some(22));
        assert_eq!(lookup(&snmp, "IcmpMsg", "InType3"), Some(1));
        let netstat_text = fixture("debian12-vm/proc/net/netstat");
        let netstat = parse_pairs(&netstat_text).unwrap();
        assert_eq!(lookup(&netstat, "TcpExt", "TCPTimeouts"), Some(2));
        assert_eq!(lookup(&netstat, "TcpExt", "TCPSynRetrans"), Some(0));
        assert_eq!(lookup(&netstat, "TcpExt", "TCPOrigDataSent"), Some(228));
        assert_eq!(lookup(&netstat, "IpExt", "InOctets"), Some(31_991_742));
        let sockstat_text = fixture("debian12-vm/proc/net/sockstat");
        let sockstat = parse_sockstat(&sockstat_text).unwrap();
        assert_eq!(lookup(&sockstat, "TCP", "mem"), Some(206));
        assert_eq!(lookup(&sockstat, "FRAG", "memory"), Some(0));

        let s = NetstatSample::extract(&snmp, Some(&netstat), Some(&sockstat));
        assert_eq!(s.counters[0], Some(12)); // ActiveOpens
        assert_eq!(s.counters[8], Some(4)); // OutRsts
        assert_eq!(s.counters[11], Some(2)); // TCPTimeouts
        assert_eq!(s.counters[13], Some(21)); // Udp InDatagrams
        assert_eq!(
            s.gauges,
            [
                Some(0),
                Some(8),
                Some(1),
                Some(0),
                Some(0),
                Some(1),
                Some(206),
                Some(0),
                Some(0)
            ]
        );
    }

    #[test]
    fn mismatched_or_truncated_pairs_are_rejected() {
        assert!(parse_pairs("Tcp: A B\n").is_err());
        assert!(parse_pairs("Tcp: A B\nTcp: 1\n").is_err());
        assert!(parse_pairs("Tcp: A B\nTcp: 1 2 3\n").is_err());
        assert!(parse_pairs("Tcp: A B\nUdp: 1 2\n").is_err());
        assert!(parse_pairs("Tcp: A B\nTcp: 1 x\n").is_err());
        assert!(parse_pairs("garbage\n").is_err());
        assert!(parse_sockstat("TCP: inuse\n").is_err());
        assert!(parse_sockstat("TCP: inuse x\n").is_err());
        assert!(parse_sockstat("no colon\n").is_err());
        let err = parse_pairs("Tcp: A B\nTcp: 1 zz\n").unwrap_err();
        assert!(err.to_string().contains("Tcp B"), "{err}");
    }

    #[test]
    fn huge_and_negative_values_are_handled() {
        let snmp =
            parse_pairs("Tcp: ActiveOpens CurrEstab\nTcp: 18446744073709551615 -3\n").unwrap();
        let s = NetstatSample::extract(&snmp, None, None);
        assert_eq!(s.counters[0], Some(u64::MAX));
        // A negative where a count is expected is omitted rather than wrapped.
        assert_eq!(s.gauges[0], None);
        assert_eq!(s.counters[1], None);
        assert_eq!(s.counters[11], None);
    }

    #[test]
    fn an_old_kernel_without_some_keys_omits_them() {
        // 2.6-era snmp: no InCsumErrors, no Udp RcvbufErrors/SndbufErrors.
        let text = "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts\n\
                    Tcp: 1 200 120000 -1 5 6 7 8 9 10 11 12 13 14\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams\n\
                    Udp: 1 2 3 4\n";
        let snmp = parse_pairs(text).unwrap();
        let s = NetstatSample::extract(&snmp, None, None);
        assert_eq!(
            &s.counters[..9],
            &[
                Some(5),
                Some(6),
                Some(7),
                Some(8),
                Some(10),
                Some(11),
                Some(12),
                Some(13),
                Some(14)
            ]
        );
        assert_eq!(
            &s.counters[13..],
            &[Some(1), Some(4), Some(2), Some(3), None, None]
        );
        assert_eq!(s.gauges[0], Some(9));
    }

    fn two_cycles(dir: &str) -> (Vec<Row>, Vec<Row>) {
        let settings = Settings {
            roots: Roots::under(format!("{FIXTURES}/{dir}")),
            ..Settings::default()
        };
        let mut netstat = Netstat::new(&settings);
        let t0 = Cycle::now();
        let t1 = Cycle {
            ts: t0.ts + 2_000_000_000,
            at: t0.at + Duration::from_secs(2),
        };
        let (mut first, mut second) = (Vec::new(), Vec::new());
        netstat.collect(&t0, &mut first).unwrap();
        netstat.collect(&t1, &mut second).unwrap();
        (first, second)
    }

    #[test]
    fn collects_twice_with_rates_only_on_the_second_cycle() {
        let (first, second) = two_cycles("debian12-vm");
        assert_eq!((first.len(), second.len()), (1, 1));
        let row = &first[0];
        assert_eq!(row.table, "netstat");
        assert!(row.tags.is_empty());
        assert_eq!(row.field("tcp_in_segments_total"), Some(Value::Int(1198)));
        assert_eq!(row.field("tcp_listen_drops_total"), Some(Value::Int(0)));
        assert_eq!(
            row.field("udp_send_buffer_errors_total"),
            Some(Value::Int(0))
        );
        assert_eq!(row.field("tcp_memory_pages"), Some(Value::Int(206)));
        assert_eq!(row.field("sockets_used"), Some(Value::Int(8)));
        assert!(row.field("tcp_in_segments_per_second").is_none());
        assert_eq!(row.fields.len(), 19 + 9);
        let row = &second[0];
        assert_eq!(row.fields.len(), 2 * 19 + 9);
        assert_eq!(
            row.field("tcp_in_segments_per_second"),
            Some(Value::Float(0.0))
        );
        assert_eq!(
            row.field("tcp_syn_retransmits_per_second"),
            Some(Value::Float(0.0))
        );
    }

    #[test]
    fn a_host_without_netstat_and_sockstat_reports_the_snmp_fields() {
        let (first, second) = two_cycles("edge-minimal-host");
        let row = &first[0];
        assert_eq!(row.field("tcp_active_opens_total"), Some(Value::Int(3)));
        assert_eq!(row.field("tcp_established"), Some(Value::Int(1)));
        assert!(row.field("tcp_listen_drops_total").is_none());
        assert!(row.field("sockets_used").is_none());
        assert_eq!(row.fields.len(), 15 + 1);
        assert_eq!(second[0].fields.len(), 2 * 15 + 1);
    }

    #[test]
    fn missing_snmp_is_unavailable() {
        let settings = Settings {
            roots: Roots::under("/nonexistent"),
            ..Settings::default()
        };
        let err = Netstat::new(&settings)
            .collect(&Cycle::now(), &mut Vec::new())
            .unwrap_err();
        assert!(matches!(err, CollectError::Unavailable { .. }));
    }

    #[test]
    fn a_counter_set_change_restarts_rates() {
        let mut rates: Rates<u32> = Rates::default();
        let t0 = std::time::Instant::now();
        rates.observe(&0b11, t0, &[1, 2]);
        rates.sweep();
        let r = rates.observe(&0b01, t0 + Duration::from_secs(1), &[5]);
        assert_eq!(r, &[None]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let text = source::lossy(&bytes);
            let _ = parse_pairs(&text);
            let _ = parse_sockstat(&text);
        }

        #[test]
        fn random_values_parse_back(
            values in proptest::collection::vec(proptest::num::i64::ANY, 1..40),
        ) {
            let keys: Vec<String> = (0..values.len()).map(|i| format!("K{i}")).collect();
            let nums: Vec<String> = values.iter().map(i64::to_string).collect();
            let text = format!("Tcp: {}\nTcp: {}\n", keys.join(" "), nums.join(" "));
            let sections = parse_pairs(&text).unwrap();
            for (k, v) in keys.iter().zip(&values) {
                proptest::prop_assert_eq!(lookup(&sections, "Tcp", k), Some(i128::from(*v)));
            }
            let pairs: Vec<String> = keys.iter().zip(&nums).map(|(k, v)| format!("{k} {v}")).collect();
            let text = format!("TCP: {}\n", pairs.join(" "));
            let sections = parse_sockstat(&text).unwrap();
            for (k, v) in keys.iter().zip(&values) {
                proptest::prop_assert_eq!(lookup(&sections, "TCP", k), Some(i128::from(*v)));
            }
        }
    }
}
