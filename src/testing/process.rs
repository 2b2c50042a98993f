//! A server process the kit started: killed on drop, exiting on its own when the test process
//! is gone, with its recent output kept for error messages.

use std::fmt;
use std::io::{self, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::wire;

/// How much of a server's output is kept (the most recent bytes).
const OUTPUT_LIMIT: usize = 64 * 1024;

/// A server process: killed on drop, and exiting on its own when our end of its standard
/// input closes (which the OS does when this process exits).
pub(super) struct ServerProcess {
    pub(super) child: Child,
    stdin: Option<ChildStdin>,
    pub(super) output: Output,
}

/// Why a server did not come up.
pub(super) enum Stopped {
    Exited(std::process::ExitStatus),
    TimedOut(Duration),
    Unknown(io::Error),
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stopped::Exited(status) => write!(f, "it exited while starting ({status})"),
            Stopped::TimedOut(waited) => {
                write!(f, "it did not answer ListTables within {waited:?}")
            }
            Stopped::Unknown(e) => write!(f, "cannot tell whether it runs: {e}"),
        }
    }
}

impl ServerProcess {
    pub(super) fn spawn(mut command: Command) -> io::Result<ServerProcess> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let output = Output::default();
        if let Some(stdout) = child.stdout.take() {
            output.capture(stdout);
        }
        if let Some(stderr) = child.stderr.take() {
            output.capture(stderr);
        }
        Ok(ServerProcess {
            stdin: child.stdin.take(),
            child,
            output,
        })
    }

    /// Polls ListTables until the server answers, exits, or `timeout` passes.
    pub(super) async fn wait_ready(
        &mut self,
        authority: &str,
        timeout: Duration,
    ) -> Result<(), Stopped> {
        let started = Instant::now();
        loop {
            if wire::answers_list_tables(authority, Duration::from_secs(2)).await {
                return Ok(());
            }
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.output.wait_closed(Duration::from_secs(2));
                    return Err(Stopped::Exited(status));
                }
                Ok(None) => {}
                Err(e) => return Err(Stopped::Unknown(e)),
            }
            if started.elapsed() >= timeout {
                return Err(Stopped::TimedOut(started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the output says the port was in use.
    pub(super) fn port_was_taken(&self) -> bool {
        let text = self.output.text().to_ascii_lowercase();
        text.contains("address already in use") || text.contains("bindexception")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The most recent output of a process, collected by one thread per stream.
#[derive(Clone, Default)]
pub(super) struct Output(Arc<(Mutex<Collected>, Condvar)>);

#[derive(Default)]
pub(super) struct Collected {
    bytes: Vec<u8>,
    /// Streams still being read.
    open: usize,
}

impl Output {
    pub(super) fn capture(&self, mut stream: impl Read + Send + 'static) {
        self.lock().open += 1;
        let output = self.clone();
        let spawned = std::thread::Builder::new()
            .name("dynamite-testing-output".into())
            .spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n @ 1..) = stream.read(&mut chunk) {
                    output.push(&chunk[..n]);
                }
                output.lock().open -= 1;
                output.0 .1.notify_all();
            });
        if let Err(e) = spawned {
            self.lock().open -= 1;
            tracing::warn!(
                target: "dynamite::testing",
                error = %e,
                "cannot collect a server's output"
            );
        }
    }

    pub(super) fn push(&self, bytes: &[u8]) {
        let kept = &mut self.lock().bytes;
        kept.extend_from_slice(bytes);
        if kept.len() > OUTPUT_LIMIT {
            let excess = kept.len() - OUTPUT_LIMIT;
            kept.drain(..excess);
        }
    }

    /// Waits (up to `timeout`) until every stream reached its end: after the process exited,
    /// the last of its output may still be in the pipes.
    pub(super) fn wait_closed(&self, timeout: Duration) {
        let (collected, closed) = &*self.0;
        let guard = collected.lock().unwrap_or_else(|p| p.into_inner());
        let _ = closed.wait_timeout_while(guard, timeout, |c| c.open > 0);
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().bytes).into_owned()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Collected> {
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_the_most_recent_bytes() {
        let output = Output::default();
        output.push(&vec![b'a'; OUTPUT_LIMIT]);
        output.push(b"tail");
        let text = output.text();
        assert_eq!(text.len(), OUTPUT_LIMIT);
        assert!(text.ends_with("atail"));
    }
}
