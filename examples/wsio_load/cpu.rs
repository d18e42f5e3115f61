//! The client's own CPU time, so that a saturated load generator shows in its report.

use std::time::Duration;

/// User and system CPU time of this process so far (every thread), from `getrusage`.
pub(crate) fn used() -> (Duration, Duration) {
    // SAFETY: `rusage` is plain data, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `getrusage` writes one `rusage` through a valid, exclusive pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (time(usage.ru_utime), time(usage.ru_stime))
}

/// Raises the soft open-file limit to the hard limit: each connection is a file.
pub(crate) fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `setrlimit` reads one `rlimit` through a valid pointer. A failure leaves the
    // limit as it was, which is only a smaller ceiling on connections.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
}
