//! Signals to child processes and the kernel's account of how they ended: the only unsafe
//! code the tests need, in one place.

use std::process::Child;

/// `SIGTERM`, `SIGKILL`, `SIGSTOP`, `SIGCONT`, as the tests send them.
pub use libc::{SIGCONT, SIGKILL, SIGSTOP, SIGTERM};

/// Sends `signal` to the process `pid`; a process that is gone already is no error.
pub fn signal(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, signal);
    }
}

/// How a child ended, as `wait4(2)` reports it: its own CPU time and peak RSS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ended {
    /// The exit status, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// User plus system CPU seconds.
    pub cpu_secs: f64,
    /// Peak resident memory in MB: the child's own high-water mark (`VmHWM`), sampled while
    /// it runs. Not `wait4`'s `ru_maxrss`: on Linux that starts from the *parent's* peak when
    /// the child was spawned (exec records the address space it replaces), so a bench that
    /// had read a large output before reported it for every later child.
    pub max_rss_mb: f64,
}

/// The peak resident memory of `pid` so far, in MB; `None` once it has exited.
fn high_water_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Waits for `child` to end and returns the kernel's account of it, with its peak RSS sampled
/// every 10 ms (a peak in its last 10 ms may be missed).
pub fn wait_with_usage(child: &mut Child) -> Ended {
    let id = child.id();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0.0f64;
        while let Some(mb) = high_water_mb(id) {
            peak = peak.max(mb);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        peak
    });
    let pid = libc::pid_t::try_from(id).expect("a pid fits a pid_t");
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value for it.
    #[allow(unsafe_code)]
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals of the right types for the call's duration.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4 failed for {pid}");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ended {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        cpu_secs: secs(usage.ru_utime) + secs(usage.ru_stime),
        max_rss_mb: sampler.join().unwrap_or(0.0),
    }
}
