//! LLM4AD tasks from a folder in the reference's converted format (`--root`), with plain
//! python3: discovery through index.json, the template's score through the bridge, the
//! job's `eval_kwargs` reaching the evaluator, missing modules skipped with the fix, and
//! candidates that try to print, exit or patch their way to a score getting the failure
//! score. (The upstream package itself is checked by scripts/check_llm4ad_upstream.sh.)

mod common;

use std::path::{Path, PathBuf};

use common::{Workspace, read_csv, read_json};

/// The reference's loader module, reduced to what converted evaluators use.
const LOADER: &str = r#"
class Evaluation:
    def __init__(self, template_program="", task_description="", timeout_seconds=30, **kwargs):
        self.template_program = template_program
        self.timeout_seconds = timeout_seconds
        self.kwargs = kwargs
"#;

/// A converted folder: the evaluator scores a sequence built by calling `step(i, last)`.
/// Score = -|sum - target| over `n` steps; the target sits in a helper module of the
/// folder, as converted tasks keep their helpers.
const SUM_TASK: &str = r#"
from llm4ad_loader import Evaluation
from target_value import TARGET

template_program = '''
def step(i: int, last: int) -> int:
    """Return the next number."""
    return i
'''
ENTRY_NAME = "step"
EVAL_CLASS_NAME = "SumEvaluation"
EVAL_KWARGS = {"n": 10, "timeout_seconds": 20}
TASK_DESCRIPTION = "Choose numbers whose sum hits the target."
TEMPLATE_FUNCTION = template_program


class SumEvaluation(Evaluation):
    def __init__(self, n=10, **kwargs):
        super().__init__(template_program=template_program, **kwargs)
        self.n = n

    def evaluate_program(self, program_str, callable_func):
        last, total = 0, 0
        for i in range(self.n):
            last = callable_func(i, last)
            if not isinstance(last, int):
                raise ValueError("step must return an int")
            total += last
        return -abs(total - TARGET)
"#;

/// A second task whose helper imports a module no Python has.
const NEEDY_TASK: &str = r#"
from llm4ad_loader import Evaluation
import module_nobody_has

template_program = '''
def solve(x):
    return x
'''
ENTRY_NAME = "solve"
EVAL_CLASS_NAME = "NeedyEvaluation"
EVAL_KWARGS = {}
TASK_DESCRIPTION = "Needs a module."
TEMPLATE_FUNCTION = template_program


class NeedyEvaluation(Evaluation):
    def evaluate_program(self, program_str, callable_func):
        return 0.0
"#;

/// `<ws>/LLM4AD/benchmark_tasks` with two converted tasks and the loader beside it.
fn converted_root(ws: &Workspace) -> PathBuf {
    let bench = ws.path().join("LLM4AD");
    let root = bench.join("benchmark_tasks");
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(bench.join("llm4ad_loader.py"), LOADER).unwrap();
    write("toy_sum/__init__.py", SUM_TASK);
    write("toy_sum/target_value.py", "TARGET = 100\n");
    write("optimization_needy/__init__.py", NEEDY_TASK);
    let index = serde_json::json!([
        {"key": "toy/sum", "module": "toy_sum", "entry": "step", "eval_class": "SumEvaluation",
         "task_description": "Choose numbers", "wrapper": "toy_sum", "copied_files": [], "benchmark": true},
        {"key": "optimization/needy", "module": "optimization_needy", "entry": "solve",
         "eval_class": "NeedyEvaluation", "task_description": "Needs", "wrapper": "optimization_needy",
         "copied_files": [], "benchmark": true},
    ]);
    write("index.json", &index.to_string());
    root
}

/// Run `bridge.py` on `program` for the toy task; its verdict.
fn bridge_verdict(ws: &Workspace, root: &Path, program: &str) -> serde_json::Value {
    let dir = ws.path().join("eval");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("program.py"), program).unwrap();
    let request = serde_json::json!({
        "files": {"program": "program.py"},
        "info": {"source": "folder", "root": root, "module": "toy_sum",
                 "eval_class": "SumEvaluation", "entry": "step", "execs_program": false},
        "eval_kwargs": {},
    });
    let bridge = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/llm4ad_bridge/bridge.py");
    let out = std::process::Command::new("python3")
        .arg(&bridge)
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(request.to_string().as_bytes())?;
            child.wait_with_output()
        })
        .expect("python3 runs the bridge");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("verdict `{stdout}`: {e}"))
}

#[test]
fn converted_folders_load_through_root_and_score_their_template() {
    let ws = Workspace::new();
    let root = converted_root(&ws);
    let out = ws
        .cmd()
        .args(["list-tasks", "--json", "--bench", "llm4ad", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let tasks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |id: &str| {
        tasks
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("{id} listed: {tasks}"))
            .clone()
    };
    let sum = find("llm4ad:toy/sum");
    assert_eq!(sum["source"], "folder");
    assert_eq!(sum["available"], true, "{sum}");
    let needy = find("llm4ad:optimization/needy");
    assert_eq!(needy["available"], false);
    let reason = needy["skip_reason"].as_str().unwrap();
    assert!(
        reason.contains("`module_nobody_has`") && reason.contains("pip install module_nobody_has"),
        "{reason}"
    );

    // The template sums 0..9 = 45 against the target 100: -55; with n = 20 (eval_kwargs
    // reach the evaluator's constructor, over the folder's EVAL_KWARGS) 190: -90.
    let cfg = ws.config(
        "c.yaml",
        "mode: stub\nseeds: [1]\ntasks:\n  - toy/sum\n  - {id: llm4ad:toy/sum, eval_kwargs: {n: 20}}\n  - llm4ad:optimization/needy\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1}]\n",
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--root")
        .arg(&root)
        .assert()
        .success();
    let run = ws.only_run();
    let (_, rows) = read_csv(&run.join("results.csv"));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["status"], "ok", "{:?}", rows[0]);
    assert_eq!(rows[0]["score_val_initial"].parse::<f64>().unwrap(), -55.0);
    assert_eq!(rows[1]["status"], "ok", "{:?}", rows[1]);
    assert_eq!(rows[1]["score_val_initial"].parse::<f64>().unwrap(), -90.0);
    assert_eq!(rows[2]["status"], "skipped");
    let meta = read_json(&run.join(format!("jobs/{}/job_meta.json", rows[2]["job_id"])));
    assert!(
        meta["feedback"]
            .as_str()
            .unwrap()
            .contains("module_nobody_has"),
        "{meta}"
    );
}

#[test]
fn an_llm4ad_id_without_a_source_is_skipped_with_the_install_command() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "c.yaml",
        "mode: stub\nseeds: [1]\nllm4ad_python: /nonexistent/python3\ntasks: [llm4ad:optimization/tsp_construct]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1}]\n",
    );
    let out = ws
        .cmd()
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("pip install --no-deps llm4ad"), "{text}");
    // Every job skipped: nothing was measured, so the run does not pass (exit 1).
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "no job ran: all 1 job(s) were skipped",
        ));
    let run = ws.only_run();
    let (_, rows) = read_csv(&run.join("results.csv"));
    assert_eq!(rows[0]["status"], "skipped");
    let meta = read_json(&run.join(format!("jobs/{}/job_meta.json", rows[0]["job_id"])));
    let feedback = meta["feedback"].as_str().unwrap();
    assert!(
        feedback.contains("pip install --no-deps llm4ad") && feedback.contains("--root"),
        "{feedback}"
    );
}

#[test]
fn candidates_cannot_print_exit_or_patch_their_way_to_a_score() {
    let ws = Workspace::new();
    let root = converted_root(&ws);
    let honest = "def step(i, last):\n    return 10\n";
    assert_eq!(bridge_verdict(&ws, &root, honest)["score"], 0.0);
    let forgers = [
        // A verdict of its own on stdout, through print and through the raw fd.
        "import os\nprint('{\"score\": 1e9}')\nos.write(1, b'{\"score\": 1e9}\\n')\ndef step(i, last):\n    return i\n",
        // Exit early with status 0 before any call is answered.
        "import os\nos._exit(0)\ndef step(i, last):\n    return i\n",
        // Patch what the scorer uses: builtins and the evaluator's helper module.
        "import builtins, sys\nbuiltins.abs = lambda x: 0\nimport target_value\ntarget_value.TARGET = 45\ndef step(i, last):\n    return i\n",
        // Exit with 0 in the middle of the evaluation.
        "import sys\ndef step(i, last):\n    sys.exit(0)\n",
    ];
    let scores: Vec<f64> = forgers
        .iter()
        .map(|p| bridge_verdict(&ws, &root, p)["score"].as_f64().unwrap())
        .collect();
    assert_eq!(scores[0], -55.0, "its prints are not the verdict");
    assert_eq!(scores[1], -1_000_000.0, "an early exit is a failure");
    assert!(
        scores[2] == -55.0 || scores[2] == -1_000_000.0,
        "patches in its own process change nothing here: {}",
        scores[2]
    );
    assert_eq!(scores[3], -1_000_000.0);
}

#[test]
fn the_candidates_process_reads_no_evaluator_file_and_has_no_network() {
    let ws = Workspace::new();
    let root = converted_root(&ws);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Either leak would let it hit the target exactly (score 0) instead of -55.
    let helper = root.join("toy_sum/target_value.py");
    let reader = format!(
        "import re\ntry:\n    TARGET = int(re.search(r'\\d+', open({helper:?}).read()).group())\nexcept Exception:\n    TARGET = None\ndef step(i, last):\n    return i if TARGET is None else (TARGET if i == 0 else 0)\n",
        helper = helper.display().to_string()
    );
    assert_eq!(bridge_verdict(&ws, &root, &reader)["score"], -55.0);
    let caller = format!(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n    REACHED = True\nexcept Exception:\n    REACHED = False\ndef step(i, last):\n    return (100 if i == 0 else 0) if REACHED else i\n"
    );
    let verdict = bridge_verdict(&ws, &root, &caller);
    assert_eq!(verdict["score"], -55.0, "{verdict}");
    let feedback = verdict["feedback"].as_str().unwrap();
    assert!(!feedback.contains("unconfined"), "{feedback}");
    drop(listener);
}

/// Run one `bridge.py --serve` for the toy task over `programs` (one evaluation each, each
/// in a directory of its own, as a job does); their verdicts in order.
fn served_verdicts(ws: &Workspace, root: &Path, programs: &[&str]) -> Vec<serde_json::Value> {
    served_task_verdicts(ws, root, ("toy_sum", "SumEvaluation", "step"), programs)
}

/// [`served_verdicts`] for the folder task `(module, eval_class, entry)` under `root`.
fn served_task_verdicts(
    ws: &Workspace,
    root: &Path,
    (module, eval_class, entry): (&str, &str, &str),
    programs: &[&str],
) -> Vec<serde_json::Value> {
    let mut requests = String::new();
    for (i, program) in programs.iter().enumerate() {
        let dir = ws.path().join(format!("served-{module}-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("program.py"), program).unwrap();
        let request = serde_json::json!({
            "files": {"program": "program.py"},
            "info": {"source": "folder", "root": root, "module": module,
                     "eval_class": eval_class, "entry": entry, "execs_program": false},
            "eval_kwargs": {},
            "workdir": dir,
        });
        requests.push_str(&format!("{request}\n"));
    }
    let bridge = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/llm4ad_bridge/bridge.py");
    let out = std::process::Command::new("python3")
        .arg(&bridge)
        .arg("--serve")
        .current_dir(ws.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(requests.as_bytes())?;
            child.wait_with_output()
        })
        .expect("python3 runs the bridge");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdicts: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("verdict `{l}`: {e}")))
        .collect();
    assert_eq!(
        verdicts.len(),
        programs.len(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    verdicts
}

/// Every way a candidate could leave state behind: its interpreter's modules, files in its
/// directory, its parent, /tmp and HOME, a process that outlives it serving an abstract
/// unix socket, keys in the user and session keyrings, SysV shared memory.
const LEAVE_STATE: &str = r#"
import builtins, ctypes, os, socket, sys, json
libc = ctypes.CDLL(None, use_errno=True)
KEYS = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(os.uname().machine)
builtins.TRACE_BENCH_LEFT = 100
json.TRACE_BENCH_LEFT = 100
for d in (".", "..", "/tmp", os.path.expanduser("~")):
    try:
        with open(os.path.join(d, "trace_bench_left"), "w") as f:
            f.write("100")
    except OSError:
        pass
if os.fork() == 0:
    try:
        os.setsid()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("\0trace_bench_left")
        s.listen(8)
        while True:
            c, _ = s.accept()
            c.sendall(b"100")
            c.close()
    finally:
        os._exit(0)
if KEYS:
    for ring in (-4, -3):
        libc.syscall(KEYS[0], b"user", b"trace_bench_left", b"100", 3, ring)
shm = libc.shmget(0x74726163, 4096, 0o1000 | 0o666)
if shm >= 0:
    libc.shmat.restype = ctypes.c_void_p
    addr = libc.shmat(shm, None, 0)
    if addr not in (None, ctypes.c_void_p(-1).value):
        ctypes.memmove(addr, b"100\0", 4)
"#;

/// Looks for any of it; with a find it hits the target exactly (score 0), else -55.
const FIND_STATE: &str = r#"
import builtins, ctypes, os, socket, sys, json, time
libc = ctypes.CDLL(None, use_errno=True)
KEYS = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(os.uname().machine)
found = []
if getattr(builtins, "TRACE_BENCH_LEFT", None) or getattr(json, "TRACE_BENCH_LEFT", None):
    found.append("module")
for d in (".", "..", "/tmp", os.path.expanduser("~")):
    try:
        found.append(open(os.path.join(d, "trace_bench_left")).read())
    except OSError:
        pass
for _ in range(20):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\0trace_bench_left")
        found.append(s.recv(8))
        break
    except OSError:
        time.sleep(0.01)
if KEYS:
    for ring in (-4, -3):
        if libc.syscall(KEYS[1], 10, ring, b"user", b"trace_bench_left", 0) >= 0:
            found.append("key")
shm = libc.shmget(0x74726163, 0, 0)
if shm >= 0:
    found.append("shm")
def step(i, last):
    return (100 if i == 0 else 0) if found else i
"#;

#[test]
fn a_candidate_leaves_no_state_for_the_next_one_in_the_same_job() {
    let ws = Workspace::new();
    let root = converted_root(&ws);
    let leaver = format!("{LEAVE_STATE}\ndef step(i, last):\n    return i\n");
    // The finder does find what its own program left (the check is not vacuous)...
    let both = format!("{LEAVE_STATE}\n{FIND_STATE}");
    let verdicts = served_verdicts(&ws, &root, &[&leaver, FIND_STATE, &both, FIND_STATE]);
    let scores: Vec<f64> = verdicts
        .iter()
        .map(|v| v["score"].as_f64().unwrap())
        .collect();
    assert_eq!(scores[0], -55.0, "{:?}", verdicts[0]);
    assert_eq!(scores[2], 0.0, "{:?}", verdicts[2]);
    // ...but nothing of an earlier candidate of the same job.
    assert_eq!(scores[1], -55.0, "{:?}", verdicts[1]);
    assert_eq!(scores[3], -55.0, "{:?}", verdicts[3]);
    for v in &verdicts {
        assert!(
            !v["feedback"].as_str().unwrap().contains("unconfined"),
            "{v}"
        );
    }
}

#[test]
fn arguments_a_candidate_mutates_in_place_are_the_evaluators_after_the_call() {
    let ws = Workspace::new();
    let root = converted_root(&ws);
    // The toy evaluator reads `last` back from a list it passes (see MUTATING_TASK).
    let dir = root.join("toy_mutate");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("__init__.py"), MUTATING_TASK).unwrap();
    let program = "def fill(state):\n    state['values'].append(len(state['values']))\n    state['count'] += 1\n    return None\n";
    let work = ws.path().join("mutate");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("program.py"), program).unwrap();
    let request = serde_json::json!({
        "files": {"program": "program.py"},
        "info": {"source": "folder", "root": root, "module": "toy_mutate",
                 "eval_class": "MutateEvaluation", "entry": "fill", "execs_program": false},
        "eval_kwargs": {},
        "workdir": work,
    });
    let bridge = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/llm4ad_bridge/bridge.py");
    let run = || {
        let out = std::process::Command::new("python3")
            .arg(&bridge)
            .arg("--serve")
            .current_dir(&work)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                let line = format!("{request}\n{request}\n");
                child.stdin.take().unwrap().write_all(line.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let stdout = run();
    let scores: Vec<f64> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["score"]
                .as_f64()
                .unwrap()
        })
        .collect();
    // Five calls on the same dict: values [0..5], count 5 → 5 + 10 = 15; the second
    // evaluation starts from the evaluator's untouched state again.
    assert_eq!(scores, vec![15.0, 15.0], "{stdout}");
}

/// An evaluator that passes one dict to every call and scores what the calls left in it.
const MUTATING_TASK: &str = r#"
from llm4ad_loader import Evaluation

template_program = '''
def fill(state):
    return None
'''
EVAL_CLASS_NAME = "MutateEvaluation"
EVAL_KWARGS = {}


class MutateEvaluation(Evaluation):
    def __init__(self, **kwargs):
        super().__init__(template_program=template_program, **kwargs)
        self.state = {"values": [], "count": 0}

    def evaluate_program(self, program_str, callable_func):
        for _ in range(5):
            callable_func(self.state)
        return self.state["count"] + sum(self.state["values"])
"#;

/// An evaluator that passes the same large list to every call (it crosses the shared
/// request region: its pickle is well above a kilobyte) and a fresh copy each call, then
/// scores what the calls returned plus what it finds in both lists afterwards.
const SHARED_TASK: &str = r#"
from llm4ad_loader import Evaluation

template_program = '''
def look(i, data, fresh):
    return 0
'''
EVAL_CLASS_NAME = "SharedEvaluation"
EVAL_KWARGS = {}


class SharedEvaluation(Evaluation):
    def __init__(self, **kwargs):
        super().__init__(template_program=template_program, **kwargs)
        self.data = list(range(2000))

    def evaluate_program(self, program_str, callable_func):
        total, last = 0, None
        for i in range(5):
            fresh = list(range(2000))
            total += callable_func(i, self.data, fresh)
            last = fresh
        return total + self.data[0] + last[0]
"#;

/// Finds the bridge's channel in its caller's frames and tries to write the request region
/// (the evaluator's memory): 1 per call when it found the region and could not write it,
/// 10**6 when a write went through, -100 when there was no region to try.
const WRITE_REGION: &str = r#"
import sys

def look(i, data, fresh):
    f, found, wrote = sys._getframe(1), False, False
    while f is not None:
        ch = f.f_locals.get("channel")
        if ch is not None and getattr(ch, "inbound", None) is not None:
            found = True
            region = ch.inbound
            for attempt in (lambda: region.__setitem__(slice(0, 8), b"\0" * 8),
                            lambda: (region.seek(0), region.write(b"\0" * 8)),
                            lambda: region.resize(1 << 10),
                            lambda: region.move(0, 64, 64)):
                try:
                    attempt()
                    wrote = True
                except Exception:
                    pass
        f = f.f_back
    return 10 ** 6 if wrote else (1 if found else -100)
"#;

/// Keeps references to the arguments of its first call and changes them at the fourth:
/// `data` is the evaluator's same object at every call, so (as in upstream, where the
/// candidate holds the evaluator's own objects) its change is the evaluator's; the first
/// `fresh` list is one the evaluator no longer uses, so its change is nobody's.
const KEEP_REFERENCES: &str = r#"
saved = {}

def look(i, data, fresh):
    if i == 0:
        saved["data"], saved["fresh"] = data, fresh
    if i == 3:
        saved["data"][0] += 1000
        saved["fresh"][0] += 1000
    return 0
"#;

#[test]
fn the_shared_regions_give_the_candidate_no_way_into_the_evaluators_memory() {
    let ws = Workspace::new();
    let root = converted_root(&ws);
    let dir = root.join("toy_shared");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("__init__.py"), SHARED_TASK).unwrap();
    let template = "def look(i, data, fresh):\n    return 0\n";
    let verdicts = served_task_verdicts(
        &ws,
        &root,
        ("toy_shared", "SharedEvaluation", "look"),
        &[template, WRITE_REGION, KEEP_REFERENCES, template],
    );
    let scores: Vec<f64> = verdicts
        .iter()
        .map(|v| v["score"].as_f64().unwrap())
        .collect();
    // The template: 0. The writer found the region at each of its 5 calls and wrote
    // nothing: 5. The keeper: +1000 through the evaluator's own `data` only. And the next
    // candidate of the job sees none of it: 0 again.
    assert_eq!(scores, vec![0.0, 5.0, 1000.0, 0.0], "{verdicts:?}");
}
