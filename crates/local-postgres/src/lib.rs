//! A private PostgreSQL cluster started from the binaries installed on the machine (`initdb`, `pg_ctl`), for the
//! tests (throwaway, in a temporary folder) and for the run command (persistent, in the project's data folder).
//!
//! Kept free of async and of any database driver so that `xtask` can use it without compiling one.
//!
//! Details that make it work on a fresh machine and in CI:
//! - PostgreSQL refuses to run as root, so as root every server command runs as the `postgres` system user
//!   (`runuser`), which owns the data folder.
//! - The server listens on 127.0.0.1 only, on a port chosen by the OS, with its socket inside the data folder, so it
//!   never collides with a system server or another test run.
//! - A throwaway cluster is stopped and deleted when dropped, and also by a watchdog process when the owning process
//!   dies without dropping it (a test binary never runs static destructors).

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the binaries are looked for when neither `PG_BIN` nor `pg_config` names them.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// The superuser of every cluster we create (trust auth on 127.0.0.1 only).
pub const SUPERUSER: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "PostgreSQL server binaries not found (looked at $PG_BIN, `pg_config --bindir` and {DEBIAN_PG_ROOT}/*/bin); \
         install them with `apt-get install postgresql` or set DATABASE_URL to an existing server"
    )]
    NotInstalled,
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// A running cluster. Dropping a throwaway cluster stops and deletes it; dropping a persistent one stops it.
#[derive(Debug)]
pub struct Cluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
    /// Holds the temporary folder of a throwaway cluster; `None` for a persistent one.
    throwaway: Option<tempfile::TempDir>,
}

impl Cluster {
    /// A new cluster in a temporary folder, tuned for tests (no fsync), removed on drop or when this process dies.
    pub fn start_throwaway() -> Result<Self, Error> {
        let temp = tempfile::Builder::new()
            .prefix("cruddur-pg-")
            .tempdir()
            .map_err(io_error("creating a temporary folder for Postgres"))?;
        let data_dir = temp.path().join("data");
        let mut cluster = Self::prepare(data_dir, Some(temp))?;
        cluster.start(&["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])?;
        cluster.spawn_watchdog()?;
        Ok(cluster)
    }

    /// Starts the cluster kept in `data_dir`, creating it first if the folder holds none. It survives restarts.
    pub fn start_persistent(data_dir: &Path) -> Result<Self, Error> {
        let mut cluster = Self::prepare(data_dir.to_path_buf(), None)?;
        cluster.start(&[])?;
        Ok(cluster)
    }

    fn prepare(data_dir: PathBuf, throwaway: Option<tempfile::TempDir>) -> Result<Self, Error> {
        let bin_dir = bin_dir()?;
        let as_postgres_user = running_as_root()?;
        let parent = data_dir.parent().expect("a data folder has a parent").to_path_buf();
        fs::create_dir_all(&parent).map_err(io_error(format!("creating {}", parent.display())))?;
        let cluster = Self { bin_dir, data_dir, port: 0, as_postgres_user, throwaway };
        if !cluster.data_dir.join("PG_VERSION").exists() {
            fs::create_dir_all(&cluster.data_dir)
                .map_err(io_error(format!("creating {}", cluster.data_dir.display())))?;
            if cluster.as_postgres_user {
                // The server user must own its folder and be able to reach it.
                run(Command::new("chown").args(["-R", SUPERUSER]).arg(&parent))?;
            }
            run(cluster
                .server_command("initdb")
                .args(["--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--username", SUPERUSER, "--pgdata"])
                .arg(&cluster.data_dir))?;
        }
        Ok(cluster)
    }

    fn start(&mut self, extra_settings: &[&str]) -> Result<(), Error> {
        self.port = free_port()?;
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories='{}'",
            self.port,
            self.data_dir.display()
        );
        for setting in extra_settings {
            options.push(' ');
            options.push_str(setting);
        }
        run(self
            .server_command("pg_ctl")
            .args(["start", "--wait", "--timeout=60", "--silent", "--pgdata"])
            .arg(&self.data_dir)
            .arg("--log")
            .arg(self.log_file())
            .args(["-o", &options]))
        .map_err(|error| match error {
            Error::Command { command, detail } => {
                let log = fs::read_to_string(self.log_file()).unwrap_or_default();
                Error::Command { command, detail: format!("{detail}\nserver log:\n{log}") }
            }
            other => other,
        })
        .map(drop)
    }

    /// Stops the server when this process dies, whatever the way, and deletes a throwaway cluster's folder.
    fn spawn_watchdog(&self) -> Result<(), Error> {
        let owner = std::process::id();
        let mut stop = self.server_command("pg_ctl");
        stop.args(["stop", "--mode=immediate", "--silent", "--pgdata"]).arg(&self.data_dir);
        let stop_line = shell_line(&stop);
        let folder = self.throwaway.as_ref().map(|temp| temp.path()).unwrap_or(&self.data_dir);
        let script = format!(
            "while kill -0 {owner} 2>/dev/null; do sleep 1; done; {stop_line} >/dev/null 2>&1; rm -rf '{}'",
            folder.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_error("starting the Postgres watchdog"))?;
        Ok(())
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_file(&self) -> PathBuf {
        self.data_dir.with_file_name("postgres.log")
    }

    /// A connection URL for `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database` unless it exists.
    pub fn ensure_database(&self, database: &str) -> Result<(), Error> {
        let exists = run(self
            .client_command("psql")
            .args(["-tAc", &format!("SELECT 1 FROM pg_database WHERE datname = '{database}'")]))?;
        if exists.trim() != "1" {
            run(self.client_command("createdb").arg(database))?;
        }
        Ok(())
    }

    /// Runs the SQL file at `path` in `database`, stopping at the first error.
    pub fn execute_file(&self, database: &str, path: &Path) -> Result<(), Error> {
        run(self
            .client_command("psql")
            .args(["--quiet", "--set", "ON_ERROR_STOP=1", "--dbname", database, "--file"])
            .arg(path))
        .map(drop)
    }

    fn client_command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command.args(["--host", "127.0.0.1", "--port", &self.port.to_string(), "--username", SUPERUSER]);
        command
    }

    fn server_command(&self, program: &str) -> Command {
        let binary = self.bin_dir.join(program);
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", SUPERUSER, "--"]).arg(binary);
            command
        } else {
            Command::new(binary)
        }
    }

    fn stop(&self, mode: &str) {
        let _ = self
            .server_command("pg_ctl")
            .args(["stop", "--silent", "--pgdata"])
            .arg(&self.data_dir)
            .arg(format!("--mode={mode}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A throwaway cluster's data is worthless, so skip the checkpoint; a persistent one shuts down cleanly.
        self.stop(if self.throwaway.is_some() { "immediate" } else { "fast" });
    }
}

/// The folder of `initdb`, `pg_ctl` and `postgres`: `$PG_BIN`, else `pg_config --bindir`, else the newest version
/// under /usr/lib/postgresql.
pub fn bin_dir() -> Result<PathBuf, Error> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        return if has_server(&dir) { Ok(dir) } else { Err(Error::NotInstalled) };
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_server(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(DEBIAN_PG_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir).ok_or(Error::NotInstalled)
}

/// Whether this process runs as root (then server commands run as the `postgres` user).
pub fn running_as_root() -> Result<bool, Error> {
    let owner = fs::metadata("/proc/self").map_err(io_error("reading /proc/self"))?.uid();
    Ok(owner == 0)
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_error("finding a free port for Postgres"))?;
    listener.local_addr().map(|addr| addr.port()).map_err(io_error("finding a free port for Postgres"))
}

/// Runs a command to completion, returning its standard output, or its standard error as the failure.
fn run(command: &mut Command) -> Result<String, Error> {
    let line = shell_line(command);
    let output = command.stdin(Stdio::null()).output().map_err(io_error(format!("running `{line}`")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Command { command: line, detail: String::from_utf8_lossy(&output.stderr).trim().to_owned() })
    }
}

/// The command as a shell line, quoted, for messages and for the watchdog script.
fn shell_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| format!("'{}'", part.to_string_lossy().replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throwaway_cluster_serves_queries_and_disappears_when_dropped() {
        let cluster = Cluster::start_throwaway().expect("cluster starts");
        cluster.ensure_database("cruddur").unwrap();
        cluster.ensure_database("cruddur").expect("creating twice is fine");
        let answer =
            run(cluster.client_command("psql").args(["--dbname", "cruddur", "-tAc", "SELECT 40 + 2"])).unwrap();
        assert_eq!(answer.trim(), "42");
        let folder = cluster.throwaway.as_ref().unwrap().path().to_path_buf();
        drop(cluster);
        assert!(!folder.exists(), "the temporary folder is removed");
    }

    #[test]
    fn a_persistent_cluster_keeps_its_data_across_restarts() {
        let parent = tempfile::tempdir().unwrap();
        let data_dir = parent.path().join("pg").join("data");
        let first = Cluster::start_persistent(&data_dir).unwrap();
        first.ensure_database("kept").unwrap();
        drop(first);
        let second = Cluster::start_persistent(&data_dir).unwrap();
        let answer = run(second.client_command("psql").args([
            "--dbname",
            "postgres",
            "-tAc",
            "SELECT count(*) FROM pg_database WHERE datname = 'kept'",
        ]))
        .unwrap();
        assert_eq!(answer.trim(), "1");
    }

    #[test]
    fn shell_lines_quote_every_part() {
        let mut command = Command::new("echo");
        command.args(["it's", "a b"]);
        assert_eq!(shell_line(&command), r"'echo' 'it'\''s' 'a b'");
    }
}
