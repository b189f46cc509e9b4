//! Runs a test of this binary again, alone, in a child process, so that
//! what it measures (peak memory, time) is its own and not that of the
//! tests running beside it in this process.
//!
//! The test calls [`task`] first: in the child it gets the task it was
//! given and does it; in the parent it gets `None` and starts children
//! with [`run`].

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in a child to the task it is to do.
const TASK: &str = "POLA_SANDBOX_TEST_TASK";

/// What this process is to do, if it is a child started by [`run`].
pub fn task() -> Option<String> {
    std::env::var(TASK).ok()
}

/// Runs the test `test` (its path in this binary, e.g. `bounds::name`)
/// alone in a child process with `task`, and returns the child's output.
/// Panics, with the child's output, if the child fails or runs longer than
/// `limit` (then it is killed).
pub fn run(test: &str, task: &str, limit: Duration) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(TASK, task)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The output is a few lines: it fits in the pipes while we wait.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = c.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = c.kill();
            let _ = c.wait();
            panic!("{test} ({task}) ran over {limit:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{test} ({task}): {status}\n{out}\n{err}");
    out
}

/// The line of `out` that starts with `mark`, without the mark.
pub fn line<'a>(out: &'a str, mark: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(mark))
        .unwrap_or_else(|| panic!("no {mark:?} line in:\n{out}"))
        .trim()
}

/// The peak resident memory of this process so far (`VmHWM`), in bytes.
pub fn peak_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib << 10
}
