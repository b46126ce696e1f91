//! SIGINT/SIGTERM: print "Exiting on signal N" and exit 1 at once, from the handler itself.
//!
//! Exiting inside the handler is what upstream does and is the one mechanism that stops a guest
//! wherever it is (spinning in KVM_RUN, blocked in POLL, in the ring thread) without races: the
//! kernel interrupts KVM_RUN and blocking calls to run the handler. The handler only uses the
//! async-signal-safe `write` and `_exit`, both allowed by the sandbox.

use std::io;

const PREFIX: &[u8] = b"petrel-hvt: Exiting on signal ";

extern "C" fn on_signal(signo: libc::c_int) {
    // Formatting by hand: no allocation or locks in a signal handler.
    let mut buf = [0u8; 48];
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut len = PREFIX.len();
    let mut digits = [0u8; 10];
    let mut n = signo.unsigned_abs();
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in digits[..count].iter().rev() {
        buf[len] = d;
        len += 1;
    }
    buf[len] = b'\n';
    len += 1;
    // SAFETY: `write` and `_exit` are async-signal-safe; `buf` is valid for `len` bytes.
    unsafe {
        libc::write(libc::STDERR_FILENO, buf.as_ptr().cast(), len);
        libc::_exit(1);
    }
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() -> io::Result<()> {
    for signo in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is plain old data; all-zero is a valid starting value.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: the handler only performs async-signal-safe operations (see above).
        if unsafe { libc::sigaction(signo, &action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
