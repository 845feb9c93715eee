//! `ui`: start the web app (`crate::ui`) and print the URL to open; serves until Ctrl-C.

use std::ffi::OsString;
use std::io::Write;

use super::args::{Cli, UiArgs};
use super::exit::{CliError, OK};
use crate::registry::Registry;
use crate::registry::llm4ad::Llm4adSources;
use crate::ui::{LaunchSettings, Options, start};

/// Serve the runs dir; returns only if the server stops.
pub fn ui(
    args: &UiArgs,
    registry: &Registry,
    llm4ad: &Llm4adSources,
    cli: &Cli,
) -> Result<u8, CliError> {
    // Launched runs see the same task and trainer folders as this command.
    let mut child_args: Vec<OsString> = Vec::new();
    for d in &cli.tasks_dir {
        child_args.extend(["--tasks-dir".into(), d.clone().into_os_string()]);
    }
    for d in &cli.trainers_dir {
        child_args.extend(["--trainers-dir".into(), d.clone().into_os_string()]);
    }
    if let Some(r) = &cli.root {
        child_args.extend(["--root".into(), r.clone().into_os_string()]);
    }
    if let Some(p) = &cli.llm4ad_python {
        child_args.extend(["--llm4ad-python".into(), p.into()]);
    }
    let running = start(Options {
        runs_dir: args.runs_dir.clone(),
        configs_dir: args.configs.clone(),
        host: args.host.clone(),
        port: args.port,
        read_only: args.read_only,
        launch: LaunchSettings {
            registry: registry.clone(),
            llm4ad: llm4ad.clone(),
            child_args,
        },
    })
    .map_err(|e| {
        CliError::usage(e)
            .with_hint("`--runs-dir DIR` names an existing folder; `--port 0` picks a free port")
    })?;
    // Written, not printed: a reader that went away (a pipe closed) must not stop the server.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "trace-bench ui: serving {}", args.runs_dir.display());
    if running.token().is_some() {
        let _ = writeln!(
            out,
            "listening on {} (not loopback): every request needs the token in this URL",
            running.addr()
        );
    }
    let _ = writeln!(out, "(Ctrl-C stops it)");
    let _ = writeln!(out, "open {}", running.url());
    let _ = out.flush();
    running.wait();
    Ok(OK)
}
