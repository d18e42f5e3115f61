//! Headless Chromium for the browser tests (Debian's `chromium` at `/usr/bin/chromium`,
//! installed by `scripts/install-browser.sh`): started on one page with a fresh profile in a
//! process group of its own, killed as a whole when the test ends, pass or fail, and its log
//! printed when the test fails.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

const CHROMIUM: &str = "/usr/bin/chromium";

/// A fresh directory under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(prefix: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Headless Chromium showing one page, with a fresh profile, in a process group of its own
/// that is killed on drop.
pub(crate) struct Browser {
    child: Child,
    log: PathBuf,
}

impl Browser {
    /// Opens `url`, with `flags` after the usual ones (headless, no sandbox, no GPU, no
    /// background traffic, the page's console in the log); the profile and the log go in `dir`.
    pub(crate) fn launch(url: &str, dir: &Path, flags: &[String]) -> Self {
        if !Path::new(CHROMIUM).exists() {
            panic!(
                "{CHROMIUM} is missing: run `bash scripts/install-browser.sh` (scripts/test.sh \
                 does) to install Chromium"
            );
        }
        let profile = dir.join("profile");
        let log = dir.join("chromium.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(CHROMIUM)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                // Without these it keeps trying to reach Google, and floods a closed network
                // with refused connections.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // The page's console messages, in the log a failing test prints.
                "--enable-logging=stderr",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(flags)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMIUM}: {e}"));
        Browser { child, log }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) takes two integers and touches no memory of ours. The group is the
        // one Chromium leads (process_group(0) above), and it cannot have been reused: the
        // leader is our child and is not reaped until the wait below.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- Chromium's log ---\n{log}--- end of Chromium's log ---");
        }
    }
}
