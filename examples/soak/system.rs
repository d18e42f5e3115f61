//! What the kernel says about a process (resident memory, open files, CPU time) and the
//! machine's TCP sockets, read from `/proc`; and the open-file limit, raised.

use std::time::Duration;

/// Resident memory of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
pub(crate) fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Open file descriptors of process `pid` (entries of `/proc/<pid>/fd`).
pub(crate) fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// User plus system CPU time of process `pid`, every thread (`utime` + `stime` of
/// `/proc/<pid>/stat`, in clock ticks).
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_name.split_whitespace().skip(11); // state is field 3, utime 14
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: `sysconf` only reads a configuration value.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks_per_sec = u64::try_from(ticks_per_sec).ok().filter(|&t| t > 0)?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks_per_sec as f64,
    ))
}

/// This process's own user plus system CPU time, every thread (`getrusage`).
pub(crate) fn own_cpu_time() -> Duration {
    // SAFETY: `rusage` is plain data, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `getrusage` writes one `rusage` through a valid, exclusive pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// TCP sockets in TIME_WAIT on the machine (`tw` of `/proc/net/sockstat`): the churn's
/// footprint on the ephemeral ports.
pub(crate) fn time_wait() -> Option<u64> {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let tcp = sockstat.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = tcp.split_whitespace();
    words.find(|&w| w == "tw")?;
    words.next()?.parse().ok()
}

/// Connections the kernel dropped because a listener's accept queue was full, on the whole
/// machine since boot (`ListenDrops` of `/proc/net/netstat`).
pub(crate) fn listen_drops() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut tcp_ext = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next()?, tcp_ext.next()?);
    let column = names.split_whitespace().position(|n| n == "ListenDrops")?;
    values.split_whitespace().nth(column)?.parse().ok()
}

/// A line of `/proc/sys`, trimmed, or `?`.
pub(crate) fn sysctl(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Raises the soft open-file limit to the hard limit and returns the new soft limit: each
/// connection is a file, and both the client and the server hold more than 10,000.
pub(crate) fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: `setrlimit` reads one `rlimit` through a valid pointer. A failure leaves the
    // limit as it was, which the caller sees in the value returned.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        raised.rlim_cur
    } else {
        limit.rlim_cur
    }
}

/// Asks the kernel to kill this process when its parent dies, and returns whether the parent
/// is still `parent`: a server child must not outlive the soak that measures it, even when
/// the soak is killed with SIGKILL and runs no destructor.
pub(crate) fn die_with_parent(parent: u32) -> bool {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and changes nothing but this process's
    // death signal.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: `getppid` has no preconditions. Checked after the prctl: a parent that died
    // before it would go unnoticed otherwise.
    let now = unsafe { libc::getppid() };
    u32::try_from(now).is_ok_and(|now| now == parent)
}
