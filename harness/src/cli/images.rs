//! `scs-e2e images`: build and list the images `--env kind` uses offline.

use super::*;

/// `scs-e2e images` subcommands.
#[derive(Subcommand, Debug)]
pub enum ImagesCmd {
    /// Build the images (cached, keyed on their pins; present ones are reused). Needs a
    /// container engine (DOCKER_HOST is honoured), Go and debootstrap.
    Build {
        /// Only these images (and what they need); default: all.
        names: Vec<String>,
        /// Build again even when present.
        #[arg(long)]
        force: bool,
    },
    /// What exists and what would be built.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn images_cmd(cmd: ImagesCmd) -> Result<Exit, Fatal> {
    use crate::env::images;
    let dirs = crate::env::kind::tool_dirs(None, &build::Assets::locate(None, None).bin_dir);
    let cache = images::Cache::locate();
    match cmd {
        ImagesCmd::Build { names, force } => {
            let recipes = images::closure(&names).map_err(Fatal::usage)?;
            let engine = images::Engine::find(&dirs).map_err(Fatal::infra)?;
            crate::env::kind::check_engine(&engine.docker).map_err(Fatal::infra)?;
            let t0 = std::time::Instant::now();
            let built = tokio::task::spawn_blocking(move || images::ensure_shown(&engine, &cache, &recipes, force, true))
                .await
                .map_err(|e| Fatal::infra(anyhow::anyhow!(e)))?
                .map_err(Fatal::infra)?;
            if built.is_empty() {
                eprintln!("images present");
            } else {
                eprintln!("built {} in {:.0}s", built.join(", "), t0.elapsed().as_secs_f64());
            }
        }
        ImagesCmd::List { json } => {
            let engine = images::Engine::find(&dirs)
                .ok()
                .filter(|e| e.run(&["info", "--format", "{{.ServerVersion}}"]).is_ok());
            let rows = images::list(engine.as_ref(), &cache);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows).expect("serializes"));
            } else {
                println!("{:<34} {:<34} {:<12} TAG", "IMAGE", "STATE", "KEY");
                for r in &rows {
                    println!("{:<34} {:<34} {:<12} {}", r["name"], r["state"], r["key"], r["tag"]);
                }
            }
        }
    }
    Ok(Exit::Passed)
}
