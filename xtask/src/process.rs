//! Running commands: one-shot steps that must succeed, and long-running services supervised until Ctrl-C.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The workspace root (xtask lives one level below it).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is inside the workspace").to_path_buf()
}

/// `cargo` as the one running us (the same toolchain), in the workspace root.
///
/// Under CI (`CI` set) incremental compilation is off: a clean clone builds once and never reuses that state, which
/// would be gigabytes of disk for nothing.
pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    if std::env::var_os("CI").is_some() {
        command.env("CARGO_INCREMENTAL", "0");
    }
    command
}

/// Runs a step to completion, announcing it; a failure names the step.
pub(crate) fn step(name: &str, command: &mut Command) -> anyhow::Result<()> {
    eprintln!("\n==> {name}");
    let status = command.status().with_context(|| format!("starting {name}: {command:?}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// Whether a program is on the PATH.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// Polls until something accepts TCP connections at `address`, or `timeout` passes.
pub(crate) fn wait_for_port(address: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {address} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Long-running services started together and stopped together: on Ctrl-C/SIGTERM, or as soon as one of them
/// exits, every other one is asked to stop (SIGTERM) and waited for.
pub(crate) struct Services {
    running: Vec<(String, Child)>,
    stop_requested: Arc<AtomicBool>,
}

impl Services {
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Self { running: Vec::new(), stop_requested: stop_flag()? })
    }

    /// Stops every service now.
    pub(crate) fn stop(mut self) {
        self.stop_all();
        self.running.clear();
    }

    /// Starts `command` as the service `name`; returns its pid.
    pub(crate) fn start(&mut self, name: &str, command: &mut Command) -> anyhow::Result<u32> {
        // A group of its own: Ctrl-C in the terminal reaches only us, and we stop the services in order.
        let child = command.process_group(0).spawn().with_context(|| format!("starting {name}: {command:?}"))?;
        let pid = child.id();
        self.running.push((name.to_owned(), child));
        Ok(pid)
    }

    /// Fails when a service exited before it was asked to stop.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        for (name, child) in &mut self.running {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited ({status})");
            }
        }
        Ok(())
    }

    /// Blocks until Ctrl-C or until a service exits, then stops the others.
    pub(crate) fn wait(mut self) -> anyhow::Result<()> {
        let outcome = loop {
            if self.stop_requested.load(Ordering::SeqCst) {
                break Ok(());
            }
            if let Err(exited) = self.check_running() {
                break Err(exited);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        self.stop_all();
        self.running.clear();
        outcome
    }

    /// Stops the services in the reverse order of their start, each before the next: the backend flushes its
    /// traces to the daemon before the daemon flushes to X-Ray.
    fn stop_all(&mut self) {
        for (name, child) in self.running.iter_mut().rev() {
            // std only has SIGKILL; SIGTERM lets each service finish its requests and flush its traces.
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(15);
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                    _ => break None,
                }
            };
            match status {
                Some(status) => eprintln!("{name} stopped ({})", describe(status)),
                None => {
                    eprintln!("{name} did not stop in time; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

/// Set by Ctrl-C or SIGTERM; the handler is installed once per process.
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if let Some(flag) = FLAG.get() {
        return Ok(flag.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    ctrlc::set_handler(move || handler_flag.store(true, Ordering::SeqCst)).context("installing the Ctrl-C handler")?;
    Ok(FLAG.get_or_init(|| flag).clone())
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop_all();
        self.running.clear();
    }
}

fn describe(status: ExitStatus) -> String {
    status.code().map_or_else(|| status.to_string(), |code| format!("exit code {code}"))
}
