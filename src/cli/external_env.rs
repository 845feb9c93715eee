//! `external-env`: make the external trainers' venv and print its Python (stdout), so
//! `--external-python "$(trace-bench external-env)"` works in scripts.

use super::args::ExternalEnvArgs;
use super::exit::{CliError, OK};
use crate::trainer::external::default_env_dir;
use crate::trainer::external_env::{ensure, python_of};

/// Run the command.
pub fn external_env(args: &ExternalEnvArgs) -> Result<u8, CliError> {
    let dir = match args.dir.clone().or_else(default_env_dir) {
        Some(d) => d,
        None => {
            return Err(
                CliError::usage("no user cache directory to put the venv in")
                    .with_hint("pass --dir DIR, or set HOME or XDG_CACHE_HOME"),
            );
        }
    };
    if args.print_path {
        let python = python_of(&dir);
        println!(
            "{}",
            std::path::absolute(&python).unwrap_or(python).display()
        );
        return Ok(OK);
    }
    eprintln!("trace-bench: external trainers' venv at {}", dir.display());
    let python = ensure(&dir, &args.python).map_err(|e| {
        CliError::usage(e).with_hint(format!(
            "pip needs PyPI (or a mirror in PIP_INDEX_URL); `{} -m venv` needs the venv module (Debian: apt install python3-venv)",
            args.python
        ))
    })?;
    // Absolute, so scripts can pass it on from any directory.
    let python = std::path::absolute(&python).unwrap_or(python);
    println!("{}", python.display());
    Ok(OK)
}
