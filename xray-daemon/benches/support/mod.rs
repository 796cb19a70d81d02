//! The `xray` binary as the benchmarks run it: a child process whose start-up line gives its address and whose last
//! line (after SIGTERM) gives its totals, with its peak RSS read from `/proc`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) struct Running {
    child: Child,
    /// The address the start-up line gave for the field asked.
    pub(crate) address: SocketAddr,
    /// The daemon's last line, with its totals.
    stopped: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `command` (the `xray` binary, logging its start-up line at info) and waits for the start-up line's
    /// `field` (`udp=` or `tcp=`); warnings and errors are passed on to stderr.
    pub(crate) fn start(mut command: Command, field: &'static str) -> Self {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("starting xray");
        let (found, address) = mpsc::channel();
        let (last_line, stopped) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.split_whitespace().find_map(|part| part.strip_prefix(field)) {
                    let _ = found.send(address.parse::<SocketAddr>().expect("an address"));
                } else if line.contains("X-Ray daemon stopped") {
                    let _ = last_line.send(line);
                } else if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("xray: {line}");
                }
            }
        });
        match address.recv_timeout(Duration::from_secs(10)) {
            Ok(address) => Self { child, address, stopped },
            Err(error) => {
                let _ = child.kill();
                panic!("no start-up line from xray: {error}");
            }
        }
    }

    /// Peak resident memory so far (`VmHWM`), in KB.
    pub(crate) fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM, as a container stop: the daemon flushes what it holds; returns its last line (its totals).
    pub(crate) fn stop(&mut self) -> String {
        let terminated = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        assert!(terminated.is_ok_and(|status| status.success()), "sending SIGTERM");
        self.stopped.recv_timeout(Duration::from_secs(20)).expect("the daemon's last line")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
