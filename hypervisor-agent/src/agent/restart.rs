//! When a unikernel that ended is started again (albatross' fail behaviour, A6), and how long
//! the agent waits before doing so.

use std::process::ExitStatus;
use std::time::Duration;

use petrel_wire::deployments::RestartPolicy;

/// How a tender process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn from_status(status: ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            // wait(2) without WUNTRACED reports only exits and deaths by signal.
            (None, None) => Exit::Signal(0),
        }
    }

    /// The exit code to report (none after a signal).
    pub fn code(self) -> Option<i32> {
        match self {
            Exit::Code(code) => Some(code),
            Exit::Signal(_) => None,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Exit::Code(code) => format!("exited with code {code}"),
            Exit::Signal(signal) => format!("killed by signal {signal}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Restart,
    Stop,
}

/// albatross' rule: never after a signal, exit 1 (the tender refused the image or was asked to
/// stop: solo5-hvt and petrel-hvt exit 1 on SIGTERM) or 60-64 (usage errors, `--help`); with
/// `OnFailure` any other exit code restarts, 0 and 255 (abort) included, unless `exit_codes`
/// narrows it to those codes.
pub fn decide(policy: &RestartPolicy, exit: Exit) -> Decision {
    let code = match (policy, exit) {
        (RestartPolicy::Never, _) | (_, Exit::Signal(_)) => return Decision::Stop,
        (RestartPolicy::OnFailure { .. }, Exit::Code(1 | 60..=64)) => return Decision::Stop,
        (RestartPolicy::OnFailure { .. }, Exit::Code(code)) => code,
    };
    match policy {
        RestartPolicy::OnFailure { exit_codes: Some(codes) } if !codes.contains(&code) => Decision::Stop,
        _ => Decision::Restart,
    }
}

/// The wait before a restart: albatross restarts at once, which makes a crashing unikernel
/// spin; this doubles from `initial` up to `max`, and starts over after a run that lasted
/// `reset_after` (the unikernel was healthy for a while).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60), Duration::from_secs(60))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, reset_after: Duration) -> Backoff {
        Backoff { initial, max, reset_after, next: initial }
    }

    /// The wait before the next start, after a run that lasted `uptime`.
    pub fn delay(&mut self, uptime: Duration) -> Duration {
        if uptime >= self.reset_after {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = (delay * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_failure(codes: Option<&[i32]>) -> RestartPolicy {
        RestartPolicy::OnFailure { exit_codes: codes.map(<[i32]>::to_vec) }
    }

    #[test]
    fn never_never_restarts() {
        for exit in [Exit::Code(0), Exit::Code(2), Exit::Code(255), Exit::Signal(9)] {
            assert_eq!(decide(&RestartPolicy::Never, exit), Decision::Stop, "{exit:?}");
        }
    }

    #[test]
    fn on_failure_decision_table() {
        use Decision::*;
        let any = on_failure(None);
        let table = [
            (Exit::Code(0), Restart),
            (Exit::Code(1), Stop),
            (Exit::Code(2), Restart),
            (Exit::Code(59), Restart),
            (Exit::Code(60), Stop),
            (Exit::Code(63), Stop),
            (Exit::Code(64), Stop),
            (Exit::Code(65), Restart),
            (Exit::Code(255), Restart),
            (Exit::Signal(9), Stop),
            (Exit::Signal(15), Stop),
        ];
        for (exit, want) in table {
            assert_eq!(decide(&any, exit), want, "{exit:?}");
        }
    }

    #[test]
    fn exit_codes_narrow_the_restarts() {
        use Decision::*;
        let some = on_failure(Some(&[0, 3, 255]));
        let table = [
            (Exit::Code(0), Restart),
            (Exit::Code(3), Restart),
            (Exit::Code(255), Restart),
            (Exit::Code(2), Stop),
            (Exit::Code(4), Stop),
            (Exit::Signal(3), Stop),
        ];
        for (exit, want) in table {
            assert_eq!(decide(&some, exit), want, "{exit:?}");
        }
        // 1 and 60-64 stay final even when listed: they mean the tender refused or a usage error.
        let listed = on_failure(Some(&[1, 63]));
        assert_eq!(decide(&listed, Exit::Code(1)), Stop);
        assert_eq!(decide(&listed, Exit::Code(63)), Stop);
        // An empty list restarts on nothing.
        assert_eq!(decide(&on_failure(Some(&[])), Exit::Code(0)), Stop);
    }

    #[test]
    fn exit_describes_itself() {
        assert_eq!(Exit::Code(3).describe(), "exited with code 3");
        assert_eq!(Exit::Signal(9).describe(), "killed by signal 9");
        assert_eq!(Exit::Code(3).code(), Some(3));
        assert_eq!(Exit::Signal(9).code(), None);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_long_run() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(2);
        let waits: Vec<u64> = (0..9).map(|_| b.delay(short).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.delay(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(b.delay(Duration::from_secs(59)), Duration::from_secs(2));
    }
}
