//! `cargo xtask sqlx-prepare`: regenerates `backend/.sqlx`, the query data that lets the backend build without a
//! database, by compiling it against a throwaway database migrated from `backend/migrations`.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;
use local_postgres::Cluster;

use crate::install;
use crate::process::{cargo, step, workspace_root};

pub(crate) fn run() -> anyhow::Result<()> {
    install::postgres()?;
    let root = workspace_root();
    let cluster = Cluster::start_throwaway()?;
    cluster.ensure_database("prepare")?;
    let mut migrations: Vec<_> = fs::read_dir(root.join("backend/migrations"))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    migrations.sort();
    for migration in migrations.iter().filter(|path| path.extension().is_some_and(|ext| ext == "sql")) {
        cluster.execute_file("prepare", migration).with_context(|| format!("applying {}", migration.display()))?;
    }

    touch_backend_sources(&root.join("backend"))?;
    let fresh = tempfile::tempdir()?;
    step(
        "compiling the backend's queries against the database",
        cargo()
            .args(["check", "--package", "cruddur-backend", "--all-targets"])
            .env("SQLX_OFFLINE", "false")
            .env("SQLX_OFFLINE_DIR", fresh.path())
            .env("DATABASE_URL", cluster.url("prepare")),
    )?;
    let target = root.join("backend/.sqlx");
    if target.exists() {
        fs::remove_dir_all(&target)?;
    }
    fs::create_dir_all(&target)?;
    for entry in fs::read_dir(fresh.path())? {
        let entry = entry?;
        fs::copy(entry.path(), target.join(entry.file_name()))?;
    }
    eprintln!("backend/.sqlx regenerated: commit it");
    Ok(())
}

/// Marks every source file of the backend as changed, so that every query macro runs again and writes its data.
fn touch_backend_sources(dir: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.ends_with(".sqlx") {
            touch_backend_sources(&path)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            fs::File::options().append(true).open(&path)?.set_modified(SystemTime::now())?;
        }
    }
    Ok(())
}
