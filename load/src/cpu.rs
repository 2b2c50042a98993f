//! The process's CPU time, from `getrusage(RUSAGE_SELF)`.
//!
//! The one place with `unsafe` in the crate: libc's `getrusage` is a plain FFI call. It is
//! sound as used here: the `rusage` buffer is a zeroed, properly aligned local that the call
//! only writes, `RUSAGE_SELF` is a valid `who`, and the result is read only when the call
//! reports success.
#![allow(unsafe_code)]

use std::ops::Sub;
use std::time::Duration;

/// CPU time used by the whole process (every thread) so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTime {
    /// Time in user mode.
    pub(crate) user: Duration,
    /// Time in the kernel on the process's behalf.
    pub(crate) system: Duration,
}

impl CpuTime {
    /// User plus system time.
    pub(crate) fn total(self) -> Duration {
        self.user + self.system
    }
}

impl Sub for CpuTime {
    type Output = CpuTime;

    /// The CPU time between two readings (saturating at zero).
    fn sub(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// The process's CPU time now; zero if the kernel refuses (it does not for `RUSAGE_SELF`).
pub(crate) fn process_cpu() -> CpuTime {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: see the module documentation: a valid `who` and a writable, aligned buffer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return CpuTime::default();
    }
    // SAFETY: the buffer was zero-initialised (a valid `rusage`) and filled by the call.
    let usage = unsafe { usage.assume_init() };
    CpuTime {
        user: timeval(usage.ru_utime),
        system: timeval(usage.ru_stime),
    }
}

/// A `timeval` as a `Duration` (negative fields, which the kernel never gives, as zero).
fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u64::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = process_cpu() - before;
        assert!(used.total() >= Duration::from_millis(20), "{used:?}");
    }

    #[test]
    fn differences_saturate() {
        let a = CpuTime {
            user: Duration::from_millis(5),
            system: Duration::from_millis(1),
        };
        let b = CpuTime {
            user: Duration::from_millis(3),
            system: Duration::from_millis(2),
        };
        assert_eq!(
            a - b,
            CpuTime {
                user: Duration::from_millis(2),
                system: Duration::ZERO
            }
        );
        assert_eq!((a - b).total(), Duration::from_millis(2));
    }
}
