//! Child processes for tests that kill real processes: the test binary runs itself again
//! (`std::env::current_exe()`) with `--exact <child> --ignored --nocapture`, the child test
//! named in [`ROLE`] and configured through environment variables.
//!
//! A child test is `#[ignore]`d (so a normal `cargo test` does not run it) and returns at once
//! unless [`is_child`] says this process was started for it. It reports to the parent with
//! [`report`] lines (`CHILD-<tag> <rest>` on stdout), which [`ChildProcess::line`] waits for.
//! Every child has a watchdog: it exits on its own after the time given to [`is_child`], so a
//! failing parent leaves no process behind. Dropping a [`ChildProcess`] kills it.

#![allow(dead_code)] // each test binary uses part of it

use std::{
    io::{BufRead, BufReader},
    os::unix::process::ExitStatusExt,
    process::{Command, ExitStatus, Stdio},
    sync::mpsc,
    time::Duration,
};

/// The variable naming the child test a re-executed binary is to run.
pub const ROLE: &str = "TIDINGS_TEST_CHILD";

/// What starts every report line.
const PREFIX: &str = "CHILD-";

/// A child process running one child test of this binary. Dropping it kills it.
pub struct ChildProcess {
    name: String,
    process: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl ChildProcess {
    /// Starts the child test `test` with the variables `env`; `name` names it in failures.
    pub fn spawn(test: &str, name: impl Into<String>, env: &[(&str, &str)]) -> ChildProcess {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, test)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut process = command.spawn().unwrap();
        let stdout = process.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest prints around the test's own output; keep only the reports.
                if let Some(at) = line.find(PREFIX) {
                    if tx.send(line[at + PREFIX.len()..].to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        ChildProcess {
            name: name.into(),
            process,
            lines,
        }
    }

    /// The rest of the next `<tag>` report the child prints (reports with other tags before
    /// it are passed over).
    pub async fn line(&mut self, tag: &str, within: Duration) -> String {
        let prefix = format!("{tag} ");
        let wait = async {
            loop {
                match self.lines.try_recv() {
                    Ok(line) => {
                        if let Some(rest) = line.strip_prefix(&prefix) {
                            return rest.to_owned();
                        }
                    }
                    Err(mpsc::TryRecvError::Empty) => {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err(mpsc::TryRecvError::Disconnected) => {
                        let status = self.process.wait().unwrap();
                        panic!("{} exited ({status}) before reporting {tag:?}", self.name);
                    }
                }
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .unwrap_or_else(|_| panic!("{} reported no {tag:?} within {within:?}", self.name))
    }

    /// Whether the child is still running.
    pub fn running(&mut self) -> bool {
        self.process.try_wait().unwrap().is_none()
    }

    /// SIGKILL, and proof that the signal is what ended it.
    pub fn kill(&mut self) {
        assert!(self.running(), "{} ended before it was killed", self.name);
        self.process.kill().unwrap();
        let status = self.process.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "{} was killed: {status}",
            self.name
        );
    }

    /// Waits for the child to end on its own.
    pub async fn exit(&mut self, within: Duration) -> ExitStatus {
        let wait = async {
            loop {
                if let Some(status) = self.process.try_wait().unwrap() {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .unwrap_or_else(|_| panic!("{} did not finish within {within:?}", self.name))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // Only this child, by its own handle; it may have ended already.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Whether this process was started to run the child test `test`; if so, arms the watchdog
/// that ends it after `watchdog`.
pub fn is_child(test: &str, watchdog: Duration) -> bool {
    if std::env::var(ROLE).as_deref() != Ok(test) {
        return false;
    }
    let test = test.to_owned();
    std::thread::spawn(move || {
        std::thread::sleep(watchdog);
        eprintln!("{test}: still running after {watchdog:?}, exiting");
        std::process::exit(3);
    });
    true
}

/// The variable `key`, which the parent set.
pub fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is not set"))
}

/// A report line for the parent (on its own line: libtest may have printed the test's name).
pub fn report(tag: &str, rest: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n{PREFIX}{tag} {rest}");
    let _ = out.flush();
}
