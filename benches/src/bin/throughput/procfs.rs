//! CPU time and peak memory of a process, from Linux's `/proc`.
//!
//! `/proc/<pid>/stat` fields 14 and 15 (`utime`, `stime`) count the CPU time of every thread
//! the process has had, live or exited, in clock ticks (`getconf CLK_TCK`, 100 per second on
//! Linux: a 10 ms resolution). `VmHWM` in `/proc/<pid>/status` is the peak resident set.

use std::fs;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// utime + stime of process `pid` (`"self"` for this one), in clock ticks.
pub(crate) fn cpu_ticks(pid: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces; count from after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("no ')' in {path}"))?;
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.len() < 13 {
        bail!("{path} has too few fields: {stat}");
    }
    let utime: u64 = fields[11].parse().context("utime")?;
    let stime: u64 = fields[12].parse().context("stime")?;
    Ok(utime + stime)
}

/// `VmHWM` (peak resident set) of process `pid` in KiB.
pub(crate) fn peak_rss_kib(pid: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .with_context(|| format!("no VmHWM in {path}"))?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("bad line {line:?}"))?;
    Ok(kib.parse()?)
}

/// Clock ticks per second (`getconf CLK_TCK`); 100 if `getconf` cannot say.
pub(crate) fn ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}
