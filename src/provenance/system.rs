//! Machine description for `meta/system.json`.
//!
//! Timings and throughput are only comparable between runs on comparable machines, so each
//! run records the host, OS, CPU model and core counts, memory, and the cgroup memory limit
//! (containers and Slurm jobs often see far less memory than the host has).
//!
//! Capture happens once per run and must neither slow the run down nor fail it: only the
//! CPU list and memory are refreshed, plus this process's own entry for its cgroup (no process
//! scan, disks or networks, no CPU-usage sampling with its 200 ms wait), and anything that
//! cannot be read is written as `null`. Takes about 1 ms on a 2-core Linux VM.

use serde_json::{Value, json};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, ProcessRefreshKind, ProcessesToUpdate, System};

/// Describes this machine as a JSON object:
///
/// ```text
/// {"host", "os": {"name", "version", "long_version", "kernel"}, "arch",
///  "cpu": {"brand", "vendor", "logical_cores", "physical_cores", "frequency_mhz",
///          "available_parallelism"},
///  "memory": {"total_bytes", "available_bytes", "total_swap_bytes"},
///  "cgroup_memory_limit_bytes", "tool_version"}
/// ```
///
/// Never panics; every unavailable value is `null`. `cgroup_memory_limit_bytes` is non-null
/// only when this process's cgroup (or an ancestor) limits memory below physical RAM.
/// `available_parallelism` is what the process may actually use (affinity / CPU quota),
/// which under Slurm or in a container is often less than `logical_cores`.
pub fn capture_system() -> Value {
    let mut sys = System::new().ok();
    if let Some(sys) = sys.as_mut() {
        // CPU list only: brand and vendor come with it; no usage sampling.
        sys.refresh_cpu_list(CpuRefreshKind::nothing());
        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
    }

    let (brand, vendor, logical) = sys
        .as_ref()
        .map(|s| {
            let cpus = s.cpus();
            let first = cpus.first();
            (
                first.map(|c| c.brand().trim().to_owned()),
                first.map(|c| c.vendor_id().trim().to_owned()),
                Some(cpus.len()),
            )
        })
        .unwrap_or_default();

    // A zero total means the memory refresh failed; then none of the numbers mean anything.
    let memory = sys
        .as_ref()
        .filter(|s| s.total_memory() > 0)
        .map(|s| (s.total_memory(), s.available_memory(), s.total_swap()));

    let cgroup_limit = sys.as_mut().and_then(cgroup_memory_limit);
    let frequency = sys.as_mut().and_then(cpu_frequency_mhz);
    let parallelism = std::thread::available_parallelism()
        .ok()
        .map(std::num::NonZero::get);

    json!({
        "host": System::host_name().ok().and_then(non_empty),
        "os": {
            "name": System::name().ok().and_then(non_empty),
            "version": System::os_version().ok().and_then(non_empty),
            "long_version": System::long_os_version().ok().and_then(non_empty),
            "kernel": System::kernel_version().ok().and_then(non_empty),
        },
        "arch": non_empty(System::cpu_arch()),
        "cpu": {
            "brand": brand.and_then(non_empty),
            "vendor": vendor.and_then(non_empty),
            "logical_cores": logical.filter(|&n| n > 0),
            "physical_cores": System::physical_core_count().ok().filter(|&n| n > 0),
            "frequency_mhz": frequency,
            "available_parallelism": parallelism,
        },
        "memory": {
            "total_bytes": memory.map(|m| m.0),
            "available_bytes": memory.map(|m| m.1),
            "total_swap_bytes": memory.map(|m| m.2),
        },
        "cgroup_memory_limit_bytes": cgroup_limit,
        "tool_version": env!("CARGO_PKG_VERSION"),
    })
}

/// `s` trimmed, or `None` when blank.
fn non_empty(s: String) -> Option<String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        None
    } else if trimmed.len() == s.len() {
        Some(s)
    } else {
        Some(trimmed.to_owned())
    }
}

/// Memory limit of this process's cgroup (smallest along its ancestry, and only if below
/// physical RAM), falling back to the root cgroup's. `None` off Linux or when unlimited.
fn cgroup_memory_limit(sys: &mut System) -> Option<u64> {
    let own = sysinfo::get_current_pid().ok().and_then(|pid| {
        // Loads only our own process entry (no per-process details).
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing(),
        );
        sys.process(pid).and_then(sysinfo::Process::cgroup_limits)
    });
    own.or_else(|| sys.cgroup_limits())
        .map(|l| l.total_memory)
        .filter(|&b| b > 0)
}

/// Current frequency of the first CPU in MHz.
///
/// On Linux this reads CPU 0 only, the way sysinfo does for every CPU: sysinfo's own
/// frequency refresh re-reads `/proc/cpuinfo` once per logical CPU when cpufreq is absent
/// (typical in VMs), which costs seconds on many-core hosts.
#[cfg(target_os = "linux")]
fn cpu_frequency_mhz(_sys: &mut System) -> Option<u64> {
    let sysfs = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq");
    if let Some(khz) = sysfs.ok().and_then(|s| s.trim().parse::<u64>().ok()) {
        return Some(khz / 1000).filter(|&mhz| mhz > 0);
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    parse_cpuinfo_mhz(&cpuinfo)
}

/// Current frequency of the first CPU in MHz, as sysinfo reports it.
#[cfg(not(target_os = "linux"))]
fn cpu_frequency_mhz(sys: &mut System) -> Option<u64> {
    sys.refresh_cpu_frequency();
    sys.cpus().first().map(|c| c.frequency()).filter(|&f| f > 0)
}

/// First `cpu MHz : 2445.426` line of `/proc/cpuinfo`, rounded.
#[cfg(any(target_os = "linux", test))]
fn parse_cpuinfo_mhz(cpuinfo: &str) -> Option<u64> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if !key.trim().eq_ignore_ascii_case("cpu mhz") {
            return None;
        }
        let mhz: f64 = value.trim().parse().ok()?;
        (mhz.is_finite() && mhz >= 1.0).then(|| mhz.round() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn shape_is_complete() {
        let v = capture_system();
        let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            top,
            [
                "host",
                "os",
                "arch",
                "cpu",
                "memory",
                "cgroup_memory_limit_bytes",
                "tool_version"
            ]
        );
        let keys = |k: &str| -> Vec<String> { v[k].as_object().unwrap().keys().cloned().collect() };
        assert_eq!(keys("os"), ["name", "version", "long_version", "kernel"]);
        assert_eq!(
            keys("cpu"),
            [
                "brand",
                "vendor",
                "logical_cores",
                "physical_cores",
                "frequency_mhz",
                "available_parallelism"
            ]
        );
        assert_eq!(
            keys("memory"),
            ["total_bytes", "available_bytes", "total_swap_bytes"]
        );
        assert_eq!(v["tool_version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn values_are_plausible_on_this_machine() {
        let v = capture_system();
        // Every field is a scalar of the expected type or null.
        for k in ["host", "arch"] {
            assert!(v[k].is_string() || v[k].is_null(), "{k}: {}", v[k]);
        }
        for k in [
            "logical_cores",
            "physical_cores",
            "frequency_mhz",
            "available_parallelism",
        ] {
            assert!(v["cpu"][k].is_u64() || v["cpu"][k].is_null(), "{k}");
        }
        if let (Some(logical), Some(physical)) = (
            v["cpu"]["logical_cores"].as_u64(),
            v["cpu"]["physical_cores"].as_u64(),
        ) {
            assert!(physical <= logical);
        }
        if let (Some(total), Some(avail)) = (
            v["memory"]["total_bytes"].as_u64(),
            v["memory"]["available_bytes"].as_u64(),
        ) {
            assert!(avail <= total);
        }
        if let (Some(limit), Some(total)) = (
            v["cgroup_memory_limit_bytes"].as_u64(),
            v["memory"]["total_bytes"].as_u64(),
        ) {
            assert!(limit <= total);
        }
        if cfg!(target_os = "linux") {
            assert!(v["cpu"]["logical_cores"].as_u64().unwrap() >= 1);
            assert!(v["memory"]["total_bytes"].as_u64().unwrap() > 0);
            assert!(v["os"]["kernel"].is_string());
        }
    }

    #[test]
    fn is_fast() {
        let start = Instant::now();
        let _ = capture_system();
        let elapsed = start.elapsed();
        eprintln!("capture_system took {elapsed:?}");
        // Generous bound: catches accidental CPU-usage sampling (200 ms sleeps) or full
        // process scans, not scheduler noise.
        assert!(
            elapsed.as_secs_f64() < 2.0,
            "capture_system took {elapsed:?}"
        );
    }

    #[test]
    fn parses_cpuinfo_mhz() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu MHz\t\t: 2445.626\n\n\
                    processor\t: 1\ncpu MHz\t\t: 1000.000\n";
        assert_eq!(parse_cpuinfo_mhz(text), Some(2446));
        assert_eq!(parse_cpuinfo_mhz("CPU MHz : 3000"), Some(3000));
        assert_eq!(parse_cpuinfo_mhz("BogoMIPS : 50.00\n"), None);
        assert_eq!(parse_cpuinfo_mhz("cpu MHz : nan"), None);
        assert_eq!(parse_cpuinfo_mhz("cpu MHz : 0.0"), None);
        assert_eq!(parse_cpuinfo_mhz(""), None);
    }

    #[test]
    fn non_empty_trims_and_drops_blank() {
        assert_eq!(non_empty("  x ".into()), Some("x".into()));
        assert_eq!(non_empty("  ".into()), None);
    }
}
