//! Resource readings of a live process from `/proc` (Linux), and disk use of a folder: what the
//! fault and soak runs sample to show that memory, descriptors and disk stay bounded.

use std::path::Path;

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`), or `None` once gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The largest resident set size `pid` had so far, in KiB (`VmHWM`), or `None` once gone.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Open descriptors of `pid`, by what they point at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fds {
    pub total: u64,
    pub sockets: u64,
    /// RocksDB table files (`*.sst`): its table cache, bounded by `max_open_files`.
    pub sst: u64,
}

impl Fds {
    /// Everything but the table files: what would grow with a leaked connection or file.
    pub fn other_than_sst(&self) -> u64 {
        self.total - self.sst
    }
}

/// The open descriptors of `pid` (`/proc/<pid>/fd`), or `None` once gone.
pub fn fds(pid: u32) -> Option<Fds> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let mut fds = Fds::default();
    for entry in dir.flatten() {
        fds.total += 1;
        // A descriptor closed between listing and reading is simply not classified.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if target.starts_with("socket:") {
            fds.sockets += 1;
        } else if target.ends_with(".sst") {
            fds.sst += 1;
        }
    }
    Some(fds)
}

/// Memory and descriptors of one process at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub rss_kib: u64,
    pub fds: Fds,
}

/// [`rss_kib`] and [`fds`] of `pid`, or `None` once gone.
pub fn usage(pid: u32) -> Option<Usage> {
    Some(Usage {
        rss_kib: rss_kib(pid)?,
        fds: fds(pid)?,
    })
}

/// User + system CPU seconds used by process `pid` so far, 0 once it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz.max(1.0)
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Disk space used by the files under `dir` in KiB (allocated blocks, as `du -sk` counts them).
/// Files removed while walking (RocksDB compactions) are skipped.
pub fn disk_kib(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total_blocks = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    // Bounded: a data folder holds a few hundred entries; the cap guards against a link loop.
    let mut visited = 0usize;
    while let Some(path) = stack.pop() {
        visited += 1;
        if visited > 100_000 {
            break;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        total_blocks += meta.blocks();
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|entry| entry.path()));
            }
        }
    }
    // st_blocks counts 512-byte units.
    total_blocks / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_set_and_descriptors() {
        let pid = std::process::id();
        assert!(rss_kib(pid).is_some_and(|kib| kib > 0));
        let fds = fds(pid).expect("our own /proc entry");
        assert!(fds.total >= 3, "{fds:?}");
        assert!(alive(pid));
    }

    #[test]
    fn disk_use_counts_the_files_of_a_folder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let before = disk_kib(dir.path());
        std::fs::create_dir(dir.path().join("sub")).expect("sub folder");
        std::fs::write(dir.path().join("sub/data"), vec![7u8; 64 * 1024]).expect("write");
        assert!(disk_kib(dir.path()) >= before + 64);
    }
}
