//! `cargo xtask bench-api`: requests/s, p99 latency and the backend's CPU time per request of
//! `GET /api/activities/home` on the seeded database, measured with `wrk` against the release build of the backend and
//! a throwaway Postgres, with tracing off, to OTLP only, to X-Ray only, and to both (to local sinks that count what
//! they receive). X-Ray samples as the backend does by default: the sinks serve no sampling rules, so X-Ray's default
//! rule applies (1 trace per second, then 5%); the backend inherits the environment, so `AWS_XRAY_SAMPLING_RULES`
//! measures another rule (every trace: [`crate::stack::EVERY_TRACE`]).
//!
//! Requests/s and p99 depend on what else the machine runs (wrk, Postgres and the sinks share its cores with the
//! backend). The CPU time the backend process spent (`utime + stime` of `/proc/<pid>/stat`, every thread, exporter
//! threads included) divided by the requests it answered depends much less on it, so it is the figure that states
//! what tracing costs on a busy machine. `--rounds` repeats the modes in turn and reports medians, and for each
//! mode the spread of its CPU cost against its baseline's round by round. The stand-ins run in this process, on the
//! backend's cores, and only count what they receive (a real service's work happens elsewhere): their CPU time per
//! request is shown beside the backend's.
//!
//! `--instructions` counts instead of timing: the backend runs under valgrind's callgrind, and the instructions it
//! executed (every thread, exporters included) while `wrk` loaded it are divided by the requests answered. The count
//! hardly moves with the machine's load, so it tells a few percent of cost apart where timings cannot; it leaves out
//! the kernel's work (the sockets) and Postgres, which the exporters do not add to.
//!
//! The release build goes to `$CARGO_TARGET_DIR` (default `target/`), so a directory of its own keeps a shared
//! target's lock free while the benchmark builds.
//!
//! `--cruds 1000,1000000` measures how the API scales instead: for each size, a database of its own is seeded,
//! bulk-loaded with that many cruds plus replies and messages in proportion (`backend/sql/bulk_load.sql`, the data
//! the backend's query-plan test uses) and served by a backend of its own; each read route is then measured at every
//! size in turn (with `--rounds`, round after round), so that the machine's busy spells touch every size alike, and
//! the table compares each route's median requests/s and p99 across the sizes.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::ValueEnum;
use local_postgres::Cluster;

use crate::install;
use crate::process::{Services, cargo, step, wait_for_port, workspace_root};
use crate::sinks::{CloudWatchLogsSink, HttpSink, SegmentSink};

/// The backend binary's name as the kernel shows it (`comm`, at most 15 bytes).
const BACKEND: &str = "cruddur-backend";

/// The seed account the signed-in routes are measured as, and the seed's password (see the README).
const SEED_EMAIL: &str = "andrew@exampro.co";
const SEED_PASSWORD: &str = "cruddur-password";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// How long each measurement runs, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Which modes to measure, in turn (e.g. `both,signals`); `all` measures every one.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    tracing: Vec<Tracing>,
    /// How many times each mode is measured (in turn, so that a busy spell touches every mode); medians are shown.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Measure this backend binary instead of building one (to compare two builds on the same machine state).
    #[arg(long, value_name = "PATH")]
    backend: Option<PathBuf>,
    /// Count the backend's instructions per request under valgrind's callgrind instead of timing (once per mode:
    /// the count barely varies), and compare the modes by it.
    #[arg(long, conflicts_with = "cruds")]
    instructions: bool,
    /// Measure every read route on databases bulk-loaded with this many cruds (plus replies and messages in
    /// proportion), side by side, e.g. `1000,1000000`; with tracing off unless `--tracing` names one mode.
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    cruds: Vec<u32>,
}

impl Args {
    /// The modes `--tracing` names, `all` spelled out, each once, in the order given.
    fn modes(&self) -> Vec<Tracing> {
        let mut modes = Vec::new();
        for &mode in &self.tracing {
            let named = if mode == Tracing::All { Tracing::EVERY.as_slice() } else { std::slice::from_ref(&mode) };
            for &mode in named {
                if !modes.contains(&mode) {
                    modes.push(mode);
                }
            }
        }
        modes
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Tracing {
    Off,
    Otlp,
    Xray,
    Both,
    /// OTLP pointed at a closed port: exports fail, requests must not notice.
    DeadOtlp,
    /// OTLP + X-Ray, plus metrics over OTLP.
    Metrics,
    /// OTLP + X-Ray, plus every log line (`RUST_LOG=info`: the access log) to a CloudWatch Logs stand-in.
    Logs,
    /// OTLP + X-Ray, plus metrics and logs as above: every signal.
    Signals,
    All,
}

impl Tracing {
    /// Every mode `all` stands for.
    const EVERY: [Tracing; 8] = [
        Tracing::Off,
        Tracing::Otlp,
        Tracing::Xray,
        Tracing::Both,
        Tracing::DeadOtlp,
        Tracing::Metrics,
        Tracing::Logs,
        Tracing::Signals,
    ];

    /// What a mode's cost is measured against: traces against none; the other signals against the traces they join.
    fn baseline(self) -> Option<Tracing> {
        match self {
            Tracing::Off | Tracing::All => None,
            Tracing::Metrics | Tracing::Logs | Tracing::Signals => Some(Tracing::Both),
            Tracing::Otlp | Tracing::Xray | Tracing::Both | Tracing::DeadOtlp => Some(Tracing::Off),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tracing::Off => "tracing off",
            Tracing::Otlp => "OTLP only",
            Tracing::Xray => "X-Ray only",
            Tracing::Both => "OTLP + X-Ray",
            Tracing::DeadOtlp => "dead OTLP",
            Tracing::Metrics => "+ metrics",
            Tracing::Logs => "+ CloudWatch",
            Tracing::Signals => "all signals",
            Tracing::All => "all",
        }
    }
}

/// One measurement.
struct Measured {
    requests_per_second: f64,
    p99_ms: f64,
    non_2xx: u64,
    /// Backend CPU time (user + system, all threads) per completed request, in microseconds.
    cpu_us_per_request: f64,
    /// The share of one core the backend used while measured.
    cores: f64,
    /// CPU time per request of the stand-ins this process runs (the OTLP and X-Ray sinks, the CloudWatch Logs
    /// endpoint), in microseconds: work the real services do elsewhere, taken from the backend's cores here.
    stand_ins_us_per_request: f64,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    install::postgres()?;
    install::debian_packages(&["wrk"], "the load generator")?;
    let binary = match &args.backend {
        Some(binary) => binary.clone(),
        None => {
            step(
                "building the backend (release)",
                cargo().args(["build", "--release", "--package", "cruddur-backend"]),
            )?;
            release_binary()
        }
    };
    let cluster = Cluster::start_throwaway()?;
    let sinks =
        Sinks { otlp: HttpSink::start(false)?, xray: SegmentSink::start()?, cloudwatch: CloudWatchLogsSink::start()? };
    let Sinks { otlp, xray, cloudwatch } = &sinks;
    if !args.cruds.is_empty() {
        return scaling(&args, &binary, &cluster, &sinks);
    }
    cluster.ensure_database("bench")?;

    let modes = args.modes();
    if args.instructions {
        return instructions(&args, &binary, &cluster, &sinks, &modes);
    }
    let mut results: Vec<(u32, Tracing, Measured)> = Vec::new();
    for round in 1..=args.rounds.max(1) {
        for &mode in &modes {
            let (exports, segments) = (otlp.exports.load(Ordering::Relaxed), xray.segments.load(Ordering::Relaxed));
            let backend = Backend::start(&binary, None, &cluster, "bench", mode, &sinks)?;
            let measured = backend.measure(&args, "/api/activities/home", None)?;
            backend.stop()?;
            println!(
                "{:<13} {:>7.0} requests/s  p99 {:>6.2} ms  CPU {:>6.1} µs/request ({:.2} cores)  stand-ins {:>5.1} \
                 µs/request  non-2xx {}  (round {round}; OTLP exports received: {}, X-Ray datagrams: {})",
                mode.label(),
                measured.requests_per_second,
                measured.p99_ms,
                measured.cpu_us_per_request,
                measured.cores,
                measured.stand_ins_us_per_request,
                measured.non_2xx,
                otlp.exports.load(Ordering::Relaxed) - exports,
                xray.segments.load(Ordering::Relaxed) - segments,
            );
            results.push((round, mode, measured));
        }
    }

    let median_of = |mode: Tracing, figure: fn(&Measured) -> f64| {
        let mut values: Vec<f64> =
            results.iter().filter(|(_, measured, _)| *measured == mode).map(|(_, _, m)| figure(m)).collect();
        median(&mut values)
    };
    // A mode's CPU against its baseline's in the same round: the spread of these says how far the medians hold.
    let cpu_ratios = |mode: Tracing, baseline: Tracing| {
        let cpu_in = |wanted: Tracing, round: u32| {
            results.iter().find(|(r, m, _)| *r == round && *m == wanted).map(|(_, _, m)| m.cpu_us_per_request)
        };
        let mut ratios: Vec<f64> = (1..=args.rounds.max(1))
            .filter_map(|round| Some(cpu_in(mode, round)? / cpu_in(baseline, round)? - 1.0))
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios
    };
    println!("\nmedians of {} round(s):", args.rounds.max(1));
    for &mode in &modes {
        let (rps, p99, cpu, stand_ins) = (
            median_of(mode, |m| m.requests_per_second),
            median_of(mode, |m| m.p99_ms),
            median_of(mode, |m| m.cpu_us_per_request),
            median_of(mode, |m| m.stand_ins_us_per_request),
        );
        let (Some(rps), Some(p99), Some(cpu), Some(stand_ins)) = (rps, p99, cpu, stand_ins) else { continue };
        let against = mode.baseline().and_then(|baseline| {
            Some((
                baseline,
                median_of(baseline, |m| m.requests_per_second)?,
                median_of(baseline, |m| m.cpu_us_per_request)?,
            ))
        });
        let cost = match against {
            Some((baseline, base_rps, base_cpu)) => {
                let ratios = cpu_ratios(mode, baseline);
                let spread = match (ratios.first(), ratios.last()) {
                    (Some(low), Some(high)) if ratios.len() > 1 => {
                        format!(", {:+.1}% to {:+.1}% round by round", 100.0 * low, 100.0 * high)
                    }
                    _ => String::new(),
                };
                format!(
                    "  throughput {:+.1}%, CPU {:+.1} µs/request ({:+.1}%{spread}) against {}",
                    100.0 * (rps / base_rps - 1.0),
                    cpu - base_cpu,
                    100.0 * (cpu / base_cpu - 1.0),
                    baseline.label()
                )
            }
            None => String::new(),
        };
        println!(
            "{:<13} {rps:>7.0} requests/s  p99 {p99:>6.2} ms  CPU {cpu:>6.1} µs/request  stand-ins {stand_ins:>5.1} \
             µs/request{cost}",
            mode.label()
        );
    }
    println!("({} connections, {} s each, GET /api/activities/home)", args.connections, args.seconds);
    if modes.iter().any(|mode| matches!(mode, Tracing::Logs | Tracing::Signals)) {
        println!("(the CloudWatch Logs stand-in received {} log events)", cloudwatch.events.load(Ordering::Relaxed));
    }
    Ok(())
}

/// `--instructions`: each mode's instructions per request, counted under callgrind, and its cost against its
/// baseline by that count.
fn instructions(args: &Args, binary: &Path, cluster: &Cluster, sinks: &Sinks, modes: &[Tracing]) -> anyhow::Result<()> {
    install::debian_packages(&["valgrind"], "instruction counts")?;
    // Kept, so that `callgrind_annotate` can tell where a mode's instructions go.
    let counts = release_binary().with_file_name("bench-callgrind");
    std::fs::create_dir_all(&counts)?;
    let mut per_request = Vec::new();
    for &mode in modes {
        let backend = Backend::start(binary, Some(&counts), cluster, "bench", mode, sinks)?;
        let (instructions, dump) = backend.count_instructions(args, "/api/activities/home", &counts)?;
        backend.stop()?;
        let requests = instructions.requests;
        let counted = Counted {
            all: instructions.total as f64 / requests,
            native: (instructions.total - software_sha256(&dump)?) as f64 / requests,
        };
        println!(
            "{:<13} {:>10.0} instructions/request  (by function: callgrind_annotate {})",
            mode.label(),
            counted.all,
            dump.display()
        );
        per_request.push((mode, counted));
    }
    println!();
    println!("{:<13} {:>10} {:>28}  {:>10} {:>28}", "", "counted", "cost", "no soft SHA", "cost");
    for &(mode, counted) in &per_request {
        let baseline =
            mode.baseline().and_then(|baseline| per_request.iter().find(|(measured, _)| *measured == baseline));
        let cost = |of: fn(&Counted) -> f64| {
            baseline
                .map(|(baseline, base)| {
                    let (now, base) = (of(&counted), of(base));
                    format!("{:+.1}% ({:+.0}) vs {}", 100.0 * (now / base - 1.0), now - base, baseline.label())
                })
                .unwrap_or_default()
        };
        println!(
            "{:<13} {:>10.0} {:>28}  {:>10.0} {:>28}",
            mode.label(),
            counted.all,
            cost(|counted| counted.all),
            counted.native,
            cost(|counted| counted.native)
        );
    }
    println!(
        "(the backend under callgrind, every thread; {} s of load per mode, GET /api/activities/home; \"no soft SHA\" \
         leaves out SHA-256 done in software: valgrind hides the CPU's SHA extensions, which the process uses \
         natively for SigV4's payload hashes)",
        args.seconds
    );
    Ok(())
}

/// Instructions per request of one mode: all of them, and all but SHA-256 computed in software.
#[derive(Clone, Copy)]
struct Counted {
    all: f64,
    native: f64,
}

/// What one callgrind dump counted over a measured load.
struct Instructions {
    total: u64,
    requests: f64,
}

/// The instructions `dump` counts in `sha2`'s software SHA-256. Under valgrind, whose CPU has no SHA extensions,
/// `sha2` falls back to it; natively the extensions hash a block in a small fraction of its instructions, so these
/// are valgrind's cost, not the process's.
fn software_sha256(dump: &Path) -> anyhow::Result<u64> {
    let output = Command::new("callgrind_annotate").arg("--threshold=100").arg(dump).output()?;
    if !output.status.success() {
        bail!("callgrind_annotate {} failed: {}", dump.display(), String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("sha2::sha256::soft"))
        .filter_map(|line| line.split_whitespace().next()?.replace(',', "").parse::<u64>().ok())
        .sum())
}

/// Asks the callgrind running as `pid` to zero (`--zero`) or write out (`--dump`) its counts.
fn callgrind_control(action: &str, pid: u32) -> anyhow::Result<()> {
    let output = Command::new("callgrind_control").args([action, &pid.to_string()]).output()?;
    if !output.status.success() {
        bail!("callgrind_control {action} {pid} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// The instructions counted in the last dump of the callgrind running as `pid`, and that dump, from its files in
/// `counts` (`callgrind.out.<pid>.<dump number>`, each with a `totals:` or `summary:` line).
fn callgrind_total(counts: &Path, pid: u32) -> anyhow::Result<(u64, PathBuf)> {
    let prefix = format!("callgrind.out.{pid}.");
    let last_dump = std::fs::read_dir(counts)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| Some((name.strip_prefix(&prefix)?.parse::<u32>().ok()?, name)))
        .max()
        .with_context(|| format!("callgrind wrote no dump for {pid} in {}", counts.display()))?
        .1;
    let dump = counts.join(&last_dump);
    let total = std::fs::read_to_string(&dump)?
        .lines()
        .find_map(|line| line.strip_prefix("totals:").or_else(|| line.strip_prefix("summary:")))
        .and_then(|total| total.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no total in {}", dump.display()))?;
    Ok((total, dump))
}

/// The requests wrk's `output` says were answered.
fn requests_answered(output: &str) -> anyhow::Result<f64> {
    Ok(output
        .lines()
        .find_map(|line| line.trim().split_once(" requests in "))
        .context("wrk printed no request count")?
        .0
        .trim()
        .parse()?)
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[n / 2]),
        n => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// Where cargo puts the release build: `$CARGO_TARGET_DIR` (relative to the workspace root, where [`cargo`] runs),
/// else `target/`.
fn release_binary() -> PathBuf {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()).map_or_else(
        || root.join("target"),
        |dir| {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { root.join(dir) }
        },
    );
    target.join("release").join(BACKEND)
}

/// The local stand-ins the backend exports to: OTLP, the X-Ray daemon's UDP port, CloudWatch Logs.
struct Sinks {
    otlp: HttpSink,
    xray: SegmentSink,
    cloudwatch: CloudWatchLogsSink,
}

/// The release backend on `database` (migrated, and seeded when empty), exporting as `mode` says.
struct Backend {
    services: Services,
    port: u16,
    pid: u32,
}

impl Backend {
    /// The backend `binary`, or with `callgrind` that binary under valgrind's callgrind, writing its counts there.
    fn start(
        binary: &Path,
        callgrind: Option<&Path>,
        cluster: &Cluster,
        database: &str,
        mode: Tracing,
        sinks: &Sinks,
    ) -> anyhow::Result<Self> {
        let Sinks { otlp, xray, cloudwatch } = sinks;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut backend = match callgrind {
            Some(counts) => {
                let mut valgrind = Command::new("valgrind");
                valgrind
                    .arg("--tool=callgrind")
                    .arg(format!("--callgrind-out-file={}/callgrind.out.%p", counts.display()))
                    .arg(binary);
                valgrind
            }
            None => Command::new(binary),
        };
        backend
            .env("DATABASE_URL", cluster.url(database))
            .env("PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("SEED_IF_EMPTY", "true")
            .env("RUST_LOG", "warn")
            .env("OTEL_SERVICE_NAME", "cruddur-backend-bench")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        if matches!(mode, Tracing::Logs | Tracing::Signals) {
            backend
                .env("RUST_LOG", "info")
                .env("LOG_FORMAT", "off")
                .env("CLOUDWATCH_LOG_GROUP", "cruddur")
                .env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", cloudwatch.url())
                .env("AWS_REGION", test_support::sigv4::REGION)
                .env("AWS_ACCESS_KEY_ID", test_support::sigv4::ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", test_support::sigv4::SECRET_KEY);
        } else {
            backend.env_remove("CLOUDWATCH_LOG_GROUP");
        }
        if matches!(mode, Tracing::Metrics | Tracing::Signals) {
            backend.env("OTEL_METRIC_EXPORT_INTERVAL", "5000");
        } else {
            backend.env("OTEL_METRICS_EXPORTER", "none");
        }
        if matches!(mode, Tracing::Otlp | Tracing::Both | Tracing::Metrics | Tracing::Logs | Tracing::Signals) {
            backend.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", otlp.address));
        } else if mode == Tracing::DeadOtlp {
            let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            backend.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{closed}"));
        } else {
            backend.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        }
        if matches!(mode, Tracing::Xray | Tracing::Both | Tracing::Metrics | Tracing::Logs | Tracing::Signals) {
            backend.env("AWS_XRAY_SDK_ENABLED", "true").env("AWS_XRAY_DAEMON_ADDRESS", xray.address.to_string());
        } else {
            backend.env("AWS_XRAY_SDK_ENABLED", "false");
        }
        let mut services = Services::new()?;
        let pid = services.start("backend", &mut backend)?;
        // Under callgrind, start-up (migrations included) runs some fifty times slower.
        let start_up = if callgrind.is_some() { Duration::from_secs(600) } else { Duration::from_secs(60) };
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)), start_up)?;
        Ok(Self { services, port, pid })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET path` under load (with `token` as the bearer when given), after a short warm-up that fills the
    /// connection pool and the statement caches.
    fn measure(&self, args: &Args, path: &str, token: Option<&str>) -> anyhow::Result<Measured> {
        let url = self.url(path);
        wrk(&url, token, 2, args.connections)?;
        let (cpu_before, stand_ins_before) = (cpu_ticks(self.pid)?, cpu_ticks(std::process::id())?);
        let output = wrk(&url, token, args.seconds, args.connections)?;
        let (cpu_after, stand_ins_after) = (cpu_ticks(self.pid)?, cpu_ticks(std::process::id())?);
        let requests = requests_answered(&output)?.max(1.0);
        let ticks_per_second = clock_ticks_per_second();
        let cpu_seconds = (cpu_after - cpu_before) as f64 / ticks_per_second;
        let stand_ins_seconds = (stand_ins_after - stand_ins_before) as f64 / ticks_per_second;
        Ok(Measured {
            requests_per_second: field(&output, "Requests/sec:").context("wrk printed no Requests/sec")?.parse()?,
            p99_ms: output
                .lines()
                .map(str::trim)
                .find_map(|line| line.strip_prefix("99%"))
                .and_then(|p99| milliseconds(p99.trim()))
                .context("wrk printed no 99% latency")?,
            non_2xx: field(&output, "Non-2xx or 3xx responses:").unwrap_or("0").parse()?,
            cpu_us_per_request: 1e6 * cpu_seconds / requests,
            cores: cpu_seconds / f64::from(args.seconds),
            stand_ins_us_per_request: 1e6 * stand_ins_seconds / requests,
        })
    }

    /// Instructions executed over a load of `GET path`, and the requests answered, by the backend started with
    /// `callgrind` (its counts' folder): counted from zero after a warm-up, then dumped.
    fn count_instructions(&self, args: &Args, path: &str, callgrind: &Path) -> anyhow::Result<(Instructions, PathBuf)> {
        // Valgrind runs one thread at a time: a few connections keep it busy.
        const CONNECTIONS: u32 = 4;
        let url = self.url(path);
        wrk(&url, None, 3, CONNECTIONS)?;
        callgrind_control("--zero", self.pid)?;
        let output = wrk(&url, None, args.seconds, CONNECTIONS)?;
        callgrind_control("--dump", self.pid)?;
        let requests = requests_answered(&output)?.max(1.0);
        let (total, dump) = callgrind_total(callgrind, self.pid)?;
        Ok((Instructions { total, requests }, dump))
    }

    fn stop(mut self) -> anyhow::Result<()> {
        self.services.check_running()?;
        self.services.stop();
        Ok(())
    }
}

/// One read route as measured: its name in the table, its path, whether it is measured signed in.
struct Route {
    name: &'static str,
    path: String,
    signed_in: bool,
}

/// `--cruds`: every read route at every size, then the table that compares them.
fn scaling(args: &Args, binary: &Path, cluster: &Cluster, sinks: &Sinks) -> anyhow::Result<()> {
    let mode = match args.tracing.as_slice() {
        [Tracing::All] => Tracing::Off,
        [one] => *one,
        _ => bail!("--cruds measures one --tracing mode"),
    };
    // Every size loaded and served at once, so that each route is measured at every size in turn.
    let mut loaded = Vec::new();
    for &cruds in &args.cruds {
        let database = format!("bench_{cruds}");
        cluster.ensure_database(&database)?;
        let backend = Backend::start(binary, None, cluster, &database, mode, sinks)?;
        let loading = Instant::now();
        bulk_load(cluster, &database, cruds)?;
        eprintln!("{cruds} cruds loaded in {:.0?}", loading.elapsed());
        let (token, routes) = read_routes(&backend, cruds)?;
        loaded.push((cruds, backend, token, routes));
    }
    // measured[size][route]: one measurement per round. A busy spell of the machine touches every size of a route.
    let route_count = loaded.first().map_or(0, |(_, _, _, routes)| routes.len());
    let mut measured: Vec<Vec<Vec<Measured>>> =
        loaded.iter().map(|_| (0..route_count).map(|_| Vec::new()).collect()).collect();
    for round in 1..=args.rounds.max(1) {
        for route_index in 0..route_count {
            for (size_index, (cruds, backend, token, routes)) in loaded.iter().enumerate() {
                let route = &routes[route_index];
                let result = backend.measure(args, &route.path, route.signed_in.then_some(token.as_str()))?;
                println!(
                    "{cruds:>9} cruds  {:<28} {:>7.0} requests/s  p99 {:>7.2} ms  CPU {:>6.1} µs/request  non-2xx {}  \
                     (round {round}; {})",
                    route.name,
                    result.requests_per_second,
                    result.p99_ms,
                    result.cpu_us_per_request,
                    result.non_2xx,
                    route.path,
                );
                measured[size_index][route_index].push(result);
            }
        }
    }
    let mut sizes = Vec::new();
    for ((cruds, backend, _, routes), rounds) in loaded.into_iter().zip(measured) {
        backend.stop()?;
        let medians = routes.iter().zip(rounds).map(|(route, rounds)| (route.name, median_measured(&rounds))).collect();
        sizes.push((cruds, medians));
    }
    println!("\n{}", scaling_table(&sizes));
    println!(
        "({} connections, {} s per route, {}, medians of {} round(s), sizes in turn)",
        args.connections,
        args.seconds,
        mode.label(),
        args.rounds.max(1)
    );
    Ok(())
}

/// The medians of each figure over `rounds`.
fn median_measured(rounds: &[Measured]) -> Measured {
    let of = |figure: fn(&Measured) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(figure).collect();
        median(&mut values).unwrap_or(f64::NAN)
    };
    Measured {
        requests_per_second: of(|m| m.requests_per_second),
        p99_ms: of(|m| m.p99_ms),
        non_2xx: rounds.iter().map(|m| m.non_2xx).sum(),
        cpu_us_per_request: of(|m| m.cpu_us_per_request),
        cores: of(|m| m.cores),
        stand_ins_us_per_request: of(|m| m.stand_ins_us_per_request),
    }
}

/// Runs `backend/sql/bulk_load.sql` with `cruddur.bulk_cruds = cruds`, then `VACUUM`.
fn bulk_load(cluster: &Cluster, database: &str, cruds: u32) -> anyhow::Result<()> {
    let script = workspace_root().join("backend/sql/bulk_load.sql");
    let mut wrapper = tempfile::NamedTempFile::new()?;
    writeln!(wrapper, "SET cruddur.bulk_cruds = {cruds};")?;
    writeln!(wrapper, "\\i '{}'", script.display())?;
    // Vacuumed now, so autovacuum has nothing left to do on the fresh rows while the routes are measured.
    writeln!(wrapper, "VACUUM;")?;
    cluster.execute_file(database, wrapper.path()).with_context(|| format!("bulk-loading {cruds} cruds"))
}

/// The read routes, with ids from the loaded data: the crud in the middle of the feed (`crud <n/2>:`) is the cursor
/// of a page deep in the feed and the crud whose replies are read; the conversation is the seed user's first.
fn read_routes(backend: &Backend, cruds: u32) -> anyhow::Result<(String, Vec<Route>)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let signin = serde_json::json!({"email": SEED_EMAIL, "password": SEED_PASSWORD});
        let answer: serde_json::Value =
            client.post(backend.url("/api/auth/signin")).json(&signin).send().await?.error_for_status()?.json().await?;
        let token = answer["token"].as_str().context("sign-in answered no token")?.to_owned();
        let get = |path: String| {
            let request = client.get(backend.url(&path)).bearer_auth(&token);
            async move { anyhow::Ok(request.send().await?.error_for_status()?.json::<serde_json::Value>().await?) }
        };
        let middle = cruds / 2 - cruds / 2 % 3;
        let found = get(format!("/api/activities/search?term=crud%20{middle}:")).await?;
        let crud = found.get(0).context("the middle crud is not found: was the bulk load complete?")?;
        let (crud_uuid, author) =
            (crud["uuid"].as_str().unwrap_or_default(), crud["handle"].as_str().unwrap_or_default());
        let groups = get("/api/message_groups".to_owned()).await?;
        let group = groups.get(0).context("the seed user has no conversation")?;
        let (group_uuid, other) =
            (group["uuid"].as_str().unwrap_or_default(), group["handle"].as_str().unwrap_or_default());
        let route = |name, path: String, signed_in| Route { name, path, signed_in };
        let routes = vec![
            route("home", "/api/activities/home".to_owned(), false),
            route("home, a page mid-feed", format!("/api/activities/home?before={crud_uuid}"), false),
            route("profile", "/api/activities/@andrewbrown".to_owned(), false),
            route("crud and its replies", format!("/api/activities/@{author}/status/{crud_uuid}"), false),
            route("one activity", format!("/api/activities/{crud_uuid}"), false),
            route("notifications", "/api/activities/notifications".to_owned(), true),
            route("search, common term", "/api/activities/search?term=postgres".to_owned(), false),
            route("search, one old crud", "/api/activities/search?term=haystackneedle".to_owned(), false),
            route("conversations", "/api/message_groups".to_owned(), true),
            route("conversation", format!("/api/messages/{group_uuid}"), true),
            route("conversation by handle", format!("/api/messages/@{other}"), true),
            route("short profile", "/api/users/@andrewbrown/short".to_owned(), false),
        ];
        Ok((token, routes))
    })
}

/// The README's table: per route, requests/s and p99 at each size, and the share of the smallest size's requests/s
/// the largest keeps.
fn scaling_table(sizes: &[(u32, Vec<(&'static str, Measured)>)]) -> String {
    let mut table = String::from("| route |");
    for (cruds, _) in sizes {
        let _ = write!(table, " {cruds} cruds: requests/s | p99 |");
    }
    table.push_str(" kept |\n|---|");
    table.push_str(&"---|---|".repeat(sizes.len()));
    table.push_str("---|\n");
    let Some((_, first)) = sizes.first() else { return table };
    for (index, (name, smallest)) in first.iter().enumerate() {
        let _ = write!(table, "| {name} |");
        let mut largest = smallest;
        for (_, measured) in sizes {
            if let Some((_, result)) = measured.get(index) {
                let _ = write!(table, " {:.0} | {:.1} ms |", result.requests_per_second, result.p99_ms);
                largest = result;
            }
        }
        let _ = writeln!(table, " {:.0}% |", 100.0 * largest.requests_per_second / smallest.requests_per_second);
    }
    table
}

/// `comm` and the fields after it (the third field of `/proc/<pid>/stat`, `state`, is the first of them).
fn parse_stat(stat: &str) -> Option<(&str, Vec<&str>)> {
    // comm is in parentheses and may itself hold spaces or parentheses: it ends at the last ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let (_, comm) = head.split_once('(')?;
    Some((comm, rest.split_whitespace().collect()))
}

/// User + system CPU time of every thread of `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading {pid}'s CPU time"))?;
    let (_, fields) = parse_stat(&stat).context("an unreadable /proc/<pid>/stat")?;
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after comm.
    let tick = |index: usize| fields.get(index).and_then(|value| value.parse::<u64>().ok());
    Ok(tick(11).context("no utime")? + tick(12).context("no stime")?)
}

/// `sysconf(_SC_CLK_TCK)`, through getconf (100 on every Linux we run on).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// wrk's latency (`850.00us`, `11.62ms`, `1.02s`, `2.00m`) in milliseconds.
fn milliseconds(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        _ => return None,
    };
    Some(number * scale)
}

fn wrk(url: &str, token: Option<&str>, seconds: u32, connections: u32) -> anyhow::Result<String> {
    let mut command = Command::new("wrk");
    command.args(["--threads", "2", "--connections", &connections.to_string(), "--duration", &format!("{seconds}s")]);
    if let Some(token) = token {
        command.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    let output = command.args(["--latency", url]).output().context("running wrk")?;
    if !output.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn field<'a>(output: &'a str, label: &str) -> Option<&'a str> {
    output.lines().find_map(|line| line.trim().strip_prefix(label)).map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_latencies_are_read_in_milliseconds() {
        assert_eq!(milliseconds("850.00us"), Some(0.85));
        assert_eq!(milliseconds("11.62ms"), Some(11.62));
        assert_eq!(milliseconds("1.02s"), Some(1020.0));
        assert_eq!(milliseconds("fast"), None);
    }

    #[test]
    fn proc_stat_is_split_after_the_command_name() {
        let stat = "4242 (cruddur (x) b) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 40 0 0 20 0 9 0";
        let (comm, fields) = parse_stat(stat).unwrap();
        assert_eq!(comm, "cruddur (x) b");
        assert_eq!((fields[1], fields[11], fields[12]), ("1", "250", "40"));
    }

    #[test]
    fn tracing_names_modes_in_the_order_given_each_once() {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: Args,
        }
        let modes = |line: &[&str]| {
            let command =
                <Command as clap::Parser>::try_parse_from(std::iter::once("bench-api").chain(line.iter().copied()));
            command.map(|command| command.args.modes().iter().map(|mode| mode.label()).collect::<Vec<_>>())
        };
        assert_eq!(modes(&["--tracing", "signals,both"]).unwrap(), ["all signals", "OTLP + X-Ray"]);
        assert_eq!(modes(&["--tracing", "both", "--tracing", "off,both"]).unwrap(), ["OTLP + X-Ray", "tracing off"]);
        assert_eq!(modes(&[]).unwrap().len(), Tracing::EVERY.len());
        assert_eq!(modes(&["--tracing", "logs,all"]).unwrap()[..2], ["+ CloudWatch", "tracing off"]);
        assert!(modes(&["--tracing", "both,nothing"]).is_err());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
