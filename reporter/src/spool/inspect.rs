//! `reporter spool inspect FILE` and `reporter spool replay FILE --spool-dir DIR`:
//! offline tools for a spool segment, live or kept in `quarantine/`.
//!
//! - inspect: lists every record found (offset, length, checksum, sequence,
//!   and for a hostpulse batch its node, batch sequence, rows and samples)
//!   and every damaged range (offset, length, records lost, what is wrong),
//!   with the same framing and resynchronisation the reporter uses.
//! - replay: appends every valid record that decodes as a hostpulse batch
//!   to the spool in DIR (fsync'ed), so that a reporter started on DIR drains
//!   it into its stores. Batches the stores already hold are written again;
//!   the stores deduplicate them (same node, table, tags and timestamp). It
//!   refuses a spool whose LOCK a running reporter holds.
//!
//! Entered from `main` when the first argument is `spool`, before the
//! daemon's settings are parsed: the daemon's flags are untouched.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hostpulse_spool::{Entry, Log, Options, SegmentEntries, SpoolError};

use super::drain::decode;

/// hostpulse reporter spool tools: inspect or replay a spool segment file
/// (e.g. a damaged segment's copy in <spool-dir>/quarantine/).
#[derive(Debug, Parser)]
#[command(name = "reporter spool", version, max_term_width = 100)]
pub struct SpoolTool {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every record and damaged range of a segment file.
    Inspect {
        /// The segment file (NNN.seg, or a copy in quarantine/).
        file: PathBuf,
    },
    /// Append every valid hostpulse batch of a segment file to a spool
    /// directory; a reporter on that directory then drains them into its
    /// stores (which deduplicate batches they already hold).
    Replay {
        /// The segment file (NNN.seg, or a copy in quarantine/).
        file: PathBuf,
        /// The spool directory to append to. Not one a running reporter
        /// uses: stop it first, or replay into a separate directory.
        #[arg(long, env = "HOSTPULSE_SPOOL_DIR")]
        spool_dir: PathBuf,
    },
}

/// Runs `reporter spool ...` if that is the command line; `None` otherwise.
pub fn run_if_invoked() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != "spool" {
        return None;
    }
    let argv = std::iter::once(OsString::from("reporter spool")).chain(args);
    let tool = SpoolTool::parse_from(argv);
    let (result, what) = match &tool.command {
        Command::Inspect { file } => (inspect(file).map(|text| print!("{text}")), "inspect"),
        Command::Replay { file, spool_dir } => (
            replay(file, spool_dir).map(|text| print!("{text}")),
            "replay",
        ),
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: spool {what}: {e}");
            ExitCode::FAILURE
        }
    })
}

/// Why a tool failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The file cannot be read, or the spool directory cannot be written.
    #[error("{0}")]
    Spool(#[from] SpoolError),
    /// A running reporter holds the spool's lock.
    #[error(
        "the spool {} is in use (its LOCK is held, probably by a running reporter): \
         stop that reporter first, or replay into a separate directory and start a \
         reporter on it (--spool-dir)", .0.display()
    )]
    Locked(PathBuf),
}

/// The listing of `reporter spool inspect`.
pub fn inspect(file: &Path) -> Result<String, ToolError> {
    let entries = SegmentEntries::open(file)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} format, {} bytes",
        file.display(),
        entries.format(),
        entries.len()
    );
    let _ = writeln!(
        out,
        "{:>10} {:>9}  crc  {:>8}  content",
        "offset", "length", "seq"
    );
    let (mut records, mut batches, mut ranges, mut bytes, mut lost) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for entry in entries {
        match entry? {
            Entry::Record {
                offset,
                seq,
                payload,
            } => {
                records += 1;
                let content = match decode(&payload) {
                    Some(b) => {
                        batches += 1;
                        let samples: usize = b.decoded.rows.iter().map(|r| r.fields.len()).sum();
                        format!(
                            "node={} sequence={} rows={} samples={samples}",
                            b.node,
                            b.stored.sequence,
                            b.decoded.rows.len()
                        )
                    }
                    None => "not a hostpulse batch".to_string(),
                };
                let seq = seq.map_or_else(|| "-".to_string(), |s| s.to_string());
                let _ = writeln!(
                    out,
                    "{offset:>10} {:>9}  ok   {seq:>8}  {content}",
                    payload.len()
                );
            }
            Entry::Damaged {
                offset,
                bytes: len,
                records: n,
                damage,
            } => {
                ranges += 1;
                bytes += len;
                lost += n;
                let _ = writeln!(
                    out,
                    "{offset:>10} {len:>9}  BAD  {:>8}  DAMAGED RANGE: {n} records lost; at its start: {damage}",
                    "-"
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "{records} valid records ({batches} hostpulse batches); {ranges} damaged ranges: {bytes} bytes, {lost} records lost"
    );
    Ok(out)
}

/// Appends the valid batches of `file` to the spool in `dir`; returns the report.
pub fn replay(file: &Path, dir: &Path) -> Result<String, ToolError> {
    let entries = SegmentEntries::open(file)?;
    let (mut log, _) = match Log::open(dir, Options::default()) {
        Ok(opened) => opened,
        Err(SpoolError::Locked { dir }) => return Err(ToolError::Locked(dir)),
        Err(e) => return Err(e.into()),
    };
    let (mut appended, mut foreign, mut ranges) = (0u64, 0u64, 0u64);
    for entry in entries {
        match entry? {
            Entry::Record { payload, .. } => {
                if decode(&payload).is_some() {
                    log.append(&payload)?;
                    appended += 1;
                } else {
                    foreign += 1;
                }
            }
            Entry::Damaged { .. } => ranges += 1,
        }
    }
    log.sync()?;
    Ok(format!(
        "replayed {appended} batches from {} into the spool {} ({foreign} valid records were \
         not hostpulse batches, {ranges} damaged ranges skipped). A reporter on that spool \
         drains them into its stores; batches they already hold are deduplicated.\n",
        file.display(),
        dir.display()
    ))
}
