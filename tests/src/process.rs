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
    /// Peak resident memory in MB, as the kernel counted it.
    pub max_rss_mb: f64,
}

/// Waits for `child` to end and returns the kernel's account of it.
pub fn wait_with_usage(child: &mut Child) -> Ended {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid fits a pid_t");
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
        max_rss_mb: usage.ru_maxrss as f64 / 1024.0,
    }
}
