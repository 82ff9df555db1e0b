//! The one way an `ezchain` process of a local testnet is started and stopped: `node start`'s
//! detached nodes and account services, the gates' sandbox services, the bench's testnet and
//! the tests' nodes all come from [`spawn`] and end through [`stop_child`] or [`stop_pid`].
//!
//! A launched process reads nothing (stdin is closed) and appends its stdout and stderr to one
//! log file, so a failure can always be shown with the lines before it. Stopping is SIGTERM
//! (the process shuts down cleanly), a bounded wait, then SIGKILL.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a launched process relates to the one launching it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// A child that ends with its launcher (tests, the gates' sandboxes, the bench).
    Child,
    /// Its own process group: a Ctrl-C in the terminal that ran `node start` does not reach it,
    /// and it outlives the command that started it.
    Detached,
}

/// Starts `binary args…` with its output appended to `log` (created if missing).
pub fn spawn<I, S>(binary: &Path, args: I, log: &Path, attachment: Attachment) -> std::io::Result<Child>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let mut command = Command::new(binary);
    command.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    if attachment == Attachment::Detached {
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
    }
    command.spawn()
}

/// Sends `signal` to `pid` (nothing happens for a pid that does not exist).
pub fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// SIGTERM, up to `timeout` for the child to exit by itself, then SIGKILL; how it ended (`None`
/// when it had to be killed).
pub fn stop_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    wait_or_kill(child, timeout)
}

/// Waits up to `timeout` for `child` to exit: its status, or `None` when it had to be killed.
/// (A child writing to a pipe must have its pipe read meanwhile, or it may block on it.)
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The same for a process this one did not start (a detached node found by its pid file):
/// `runs` says whether it is still the process meant (a pid may be reused).
pub fn stop_pid(pid: u32, timeout: Duration, runs: impl Fn() -> bool) {
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + timeout;
    while runs() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if runs() {
        signal(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// The process exists and (where /proc tells) runs `marker` (`node run`, `serve`) for `home`.
pub fn process_runs(pid: u32, marker: &str, home: &Path) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None).is_err() {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // A zombie (exited, not yet reaped) is not running.
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'));
            !zombie && text.contains(marker) && text.contains(&*home.to_string_lossy())
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launched_process_logs_to_its_file_and_stops_on_sigterm() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("logs").join("process.log");
        let mut child = spawn(
            Path::new("/bin/sh"),
            ["-c", "echo started; echo to-stderr >&2; exec sleep 30"],
            &log,
            Attachment::Child,
        )
        .expect("spawns");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("to-stderr") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = stop_child(&mut child, Duration::from_secs(10)).expect("ends on SIGTERM");
        assert!(!status.success(), "ended by the signal");
        let text = std::fs::read_to_string(&log).expect("log");
        assert!(text.contains("started") && text.contains("to-stderr"), "{text}");
    }

    #[test]
    fn a_detached_process_has_its_own_group_and_is_found_by_pid_and_marker() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home-marker");
        let mut child = spawn(
            Path::new("/bin/sh"),
            [OsStr::new("-c"), OsStr::new("exec sleep 30"), home.as_os_str()],
            &dir.path().join("process.log"),
            Attachment::Detached,
        )
        .expect("spawns");
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !process_runs(pid, "sleep", Path::new("30")) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(process_runs(pid, "sleep", Path::new("30")));
        assert!(
            !process_runs(pid, "node run", &home),
            "another marker is another process"
        );
        let group = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid as i32))).expect("group");
        assert_eq!(group.as_raw(), pid as i32, "its own process group");
        // Reaped by a thread, as a detached node is reaped by nobody in particular.
        let waiter = std::thread::spawn(move || child.wait());
        stop_pid(pid, Duration::from_secs(10), || {
            process_runs(pid, "sleep", Path::new("30"))
        });
        waiter.join().expect("thread").expect("reaped");
        assert!(!process_runs(pid, "sleep", Path::new("30")));
    }
}
