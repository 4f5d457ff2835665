//! CPU time and resident memory of a process, read from /proc.
//!
//! Used for the generator itself (to show when a run is client-bound) and for
//! the broker given by --broker-pid (CPU per delivered message, peak RSS).

use std::fs;

/// Clock ticks per second of /proc/*/stat times. USER_HZ is 100 on every
/// Linux architecture this runs on, which spares a libc dependency.
const TICKS_PER_SECOND: f64 = 100.0;

/// Which process to read: this one, or another by PID.
#[derive(Clone, Copy, Debug)]
pub enum Process {
    /// The generator itself.
    This,
    /// Another process.
    Pid(u32),
}

impl Process {
    fn path(self, file: &str) -> String {
        match self {
            Process::This => format!("/proc/self/{file}"),
            Process::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }

    /// User plus system CPU seconds used so far by all of the process's threads.
    pub fn cpu_seconds(self) -> Option<f64> {
        let stat = fs::read_to_string(self.path("stat")).ok()?;
        // The command name may contain spaces and parentheses; fields resume after the last ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Counting from the state field (3rd), utime and stime are the 14th and 15th.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) as f64 / TICKS_PER_SECOND)
    }

    /// Resident set size in KiB (VmRSS).
    pub fn rss_kib(self) -> Option<u64> {
        let status = fs::read_to_string(self.path("status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(Process::This.cpu_seconds().is_some());
        assert!(Process::This.rss_kib().unwrap() > 0);
        let pid = std::process::id();
        assert!(Process::Pid(pid).rss_kib().is_some());
    }
}
