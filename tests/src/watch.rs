//! Running a watch driver (issue #15) as users do: `watch-app`, an adapter and
//! `kvplug-watch-<backend>.wasm` composed by `kvplug watch`, run by the wasmtime CLI. Shared by
//! the watch tests and the benchmark.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kvplug_compose::{artifacts, watch};
use kvplug_runner::Settings;

/// The composed command of `watch-app` (or its draft twin), the backend's adapter and driver.
pub fn composed(backend: &str, draft: bool, dir: &Path) -> PathBuf {
    crate::artifacts();
    let app = artifacts::fixture_path(if draft {
        "watch-app-draft"
    } else {
        "watch-app"
    });
    let out = dir.join(format!("watching-{backend}-{draft}.wasm"));
    watch::watch_files(
        &app,
        &artifacts::adapter_path(backend),
        &artifacts::driver_path(backend, draft),
        &out,
    )
    .expect("kvplug watch composes the three");
    out
}

/// A driver run by `wasmtime run`, killed with its process group on drop.
pub struct Driver {
    pub child: Child,
    log: PathBuf,
}

impl Driver {
    pub fn start(component: &Path, settings: &[(String, String)], log: &Path) -> Driver {
        Driver::start_with(component, settings, log, &[])
    }

    /// [`Driver::start`] with more options of `wasmtime run` (`-W max-memory-size=…`).
    pub fn start_with(
        component: &Path,
        settings: &[(String, String)],
        log: &Path,
        options: &[&str],
    ) -> Driver {
        let mut command = Command::new("wasmtime");
        command.args(["run", "-S", "http", "-S", "config"]);
        command.args(options);
        for (name, value) in settings {
            command.arg("-S").arg(format!("config-var={name}={value}"));
        }
        command.arg(component);
        Driver::spawn(command, log)
    }

    /// A driver run by `command` (another runtime: Node on a transpiled component), its
    /// stderr written to `log`.
    pub fn spawn(mut command: Command, log: &Path) -> Driver {
        command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {command:?}: {e}"));
        Driver {
            child,
            log: log.to_owned(),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the driver says it follows its buckets (its positions are then saved).
    pub fn ready(&mut self) {
        self.said("following bucket");
    }

    /// Waits until the driver's stderr holds `text`; fails if it exits first or a minute
    /// passes.
    pub fn said(&mut self, text: &str) {
        let started = Instant::now();
        while !self.stderr().contains(text) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the driver exited ({status}) before saying `{text}`: {}",
                    self.stderr()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the driver did not say `{text}`: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the driver to exit, at most `limit`.
    pub fn exit(&mut self, limit: Duration) -> (ExitStatus, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.stderr());
            }
            assert!(
                started.elapsed() < limit,
                "the driver did not exit within {limit:?}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The settings of a driver watching bucket `watched`, on top of the adapter's `base`.
pub fn driver_settings(base: Settings, extra: &[(&str, &str)]) -> Settings {
    let mut all = base;
    all.push(("watch-buckets".into(), "watched".into()));
    // Short reads, so a test's driver notices a restart quickly.
    all.push(("watch-wait-ms".into(), "1000".into()));
    all.push(("watch-idle-ms".into(), "5000".into()));
    for (name, value) in extra {
        all.retain(|(n, _)| n != name);
        all.push(((*name).into(), (*value).into()));
    }
    all
}
