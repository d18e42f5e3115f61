//! The soak's side of the server child: starting it (the same binary with `--server`),
//! learning its address, keeping its latest status line, and killing it when the soak ends,
//! whichever way it ends.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::options::Options;

/// The running server child. Dropping it kills and reaps the child; the child also asks the
/// kernel to kill it if the soak dies first (see `system::die_with_parent`).
pub(crate) struct ServerChild {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// The latest `status …` line the server printed.
    status: Arc<Mutex<String>>,
}

impl ServerChild {
    /// Starts the server with the connections' settings from `options`. Call it from the
    /// main thread: the child's death signal fires when the thread that started it exits.
    pub(crate) fn start(options: &Options) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .args(["--server", "--compression", options.compression.as_str()])
            .args(["--max-size", &options.max_size.to_string()])
            .args(["--parent-pid", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = lines.next();
        let addr = first
            .as_ref()
            .and_then(|line| line.as_ref().ok())
            .and_then(|line| line.strip_prefix("listening "))
            .and_then(|addr| addr.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the server did not start: {first:?}"));
        };
        let status = Arc::new(Mutex::new(String::new()));
        let latest = status.clone();
        // Keeps only the latest line: the pipe is drained and memory stays bounded. The
        // thread ends when the child's stdout closes.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                *latest.lock().expect("no panics while locked") = line;
            }
        });
        Ok(ServerChild {
            child,
            addr,
            status,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's latest status line, without its `status ` prefix.
    pub(crate) fn status(&self) -> String {
        let line = self.status.lock().expect("no panics while locked");
        line.strip_prefix("status ").unwrap_or(&line).to_owned()
    }

    /// The `open=` figure of the latest status line.
    pub(crate) fn open(&self) -> Option<u64> {
        self.status()
            .split_whitespace()
            .find_map(|w| w.strip_prefix("open="))
            .and_then(|n| n.parse().ok())
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
