//! Stats of a running unikernel, as albatross' stats but read from what Linux already keeps:
//! the tender's CPU time and start time from `/proc/<pid>/stat`, its resident memory (guest
//! memory included) from `/proc/<pid>/status`, and each tap's counters from `net/dev`
//! (of the agent's network namespace, where the taps are; sysfs would show the namespace it
//! was mounted in).

use std::io;
use std::path::Path;

use chrono::Utc;
use petrel_wire::deployments::{DeploymentStats, NetCounters};

/// One sample of the tender `pid`, whose network devices are `(manifest name, tap)`.
pub fn sample(pid: u32, nets: &[(String, String)]) -> io::Result<DeploymentStats> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let stat = std::fs::read_to_string(proc_dir.join("stat"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // Fields after the name, counted from 0: utime is 11, stime 12, starttime 19 (man 5 proc).
    let field = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/stat field {i}")))
    };
    // SAFETY: sysconf has no memory effects; it reads a constant of the system.
    let ticks_per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100).max(1);
    let to_ms = |ticks: u64| ticks * 1000 / ticks_per_second;
    let boot_uptime_ms = std::fs::read_to_string("/proc/uptime")?
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .map(|s| (s * 1000.0) as u64)
        .unwrap_or(0);
    let status = std::fs::read_to_string(proc_dir.join("status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    // This thread's namespace: a thread may have entered another than the process's.
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev")?;
    let nets = nets
        .iter()
        .map(|(device, tap)| {
            // `  name: rx_bytes rx_packets errs drop fifo frame compressed multicast tx_bytes tx_packets ...`
            let numbers: Vec<u64> = dev
                .lines()
                .find_map(|l| l.trim_start().strip_prefix(tap.as_str())?.strip_prefix(':'))
                .map(|rest| rest.split_whitespace().filter_map(|n| n.parse().ok()).collect())
                .unwrap_or_default();
            let at = |i: usize| numbers.get(i).copied().unwrap_or(0);
            NetCounters {
                device: device.clone(),
                rx_bytes: at(0),
                rx_packets: at(1),
                tx_bytes: at(8),
                tx_packets: at(9),
            }
        })
        .collect();
    Ok(DeploymentStats {
        at: Utc::now(),
        uptime_ms: boot_uptime_ms.saturating_sub(to_ms(field(19)?)),
        cpu_user_ms: to_ms(field(11)?),
        cpu_system_ms: to_ms(field(12)?),
        rss_kib,
        nets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_has_cpu_time_memory_and_an_uptime() {
        // This test process: it has run, it has memory, and it started before now.
        let busy = std::time::Instant::now();
        while busy.elapsed() < std::time::Duration::from_millis(50) {}
        let s = sample(std::process::id(), &[("service".into(), "lo".into())]).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.cpu_user_ms + s.cpu_system_ms > 0, "{s:?}");
        assert_eq!(s.nets[0].device, "service");
        assert!(sample(u32::MAX, &[]).is_err(), "no such process");
    }
}
