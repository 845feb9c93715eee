"""OpenEvolveTrainer: OpenEvolve 0.4.0's `run_evolution` on any trace-bench task.

Started by trace-bench once per job (docs/external-trainers.md#openevolvetrainer).

- The program. A task with one trainable code parameter (LLM4AD's heuristics, code tasks)
  evolves that code itself; any other task evolves a small Python program holding the
  trainable values as literals (``candidate = {...}``, as the reference does), read back
  with ``ast.literal_eval`` and never executed here.
- The evaluator. This file is also OpenEvolve's evaluator file: its ``evaluate(path)``
  runs in OpenEvolve's worker process, turns the program into parameter values and asks
  trace-bench to score them (``/tb/evaluate``): the score is trace-bench's, computed by
  the task's own agent and scorer, never by the candidate. The examples' feedback goes
  back as an OpenEvolve *artifact*, so it appears in the next prompt under
  ``## Last Execution Output`` (the reference put it in the metrics, where the prompt
  never shows it).
- The LLM. One ``LLMModelConfig`` named ``tb-proposer`` at the job's loopback ``/v1``
  with the job token; no retries (trace-bench's LLM layer has its own), a long timeout
  (trace-bench's deadline ends the job).
- Determinism. The job seed is OpenEvolve's ``random_seed`` and its database's, one
  worker and one evaluation at a time, program ids drawn from the seed instead of
  ``uuid4`` (OpenEvolve sorts by id in places), no evaluation retries.
- Steps and result. Each evaluation that beats the best so far is a step; the best
  program goes back through ``/tb/final`` (the initial values when ``ensure_improvement``
  and it does not beat them by ``improvement_threshold``) and trace-bench re-scores it.
"""

import ast
import json
import os
import pprint
import random
import sys
import uuid

from tb_client import Client, TraceBenchError

START = "# EVOLVE-BLOCK-START"
END = "# EVOLVE-BLOCK-END"
BEST_FILE = "openevolve_best.json"

_tb = None


def client():
    global _tb
    if _tb is None:
        _tb = Client.from_env()
    return _tb


def trainable(packet):
    return [p for p in packet["parameters"] if p["trainable"]]


def code_mode(packet):
    """Whether the program is the code parameter itself (one trainable code parameter)."""
    params = trainable(packet)
    return len(params) == 1 and params[0]["kind"] == "code"


def render(packet, values):
    """The OpenEvolve program of parameter values."""
    params = trainable(packet)
    if code_mode(packet):
        code = values[params[0]["name"]].rstrip("\n")
        return f"{START}\n{code}\n{END}\n"
    candidate = {p["name"]: values[p["name"]] for p in params}
    lines = [
        "# The values of the task's trainable parameters. Change the values, keep the names;",
        "# the program is read with ast.literal_eval and never executed.",
        START,
        "candidate = " + pprint.pformat(candidate, sort_dicts=True, width=100),
        END,
    ]
    return "\n".join(lines) + "\n"


def parse(packet, program):
    """Parameter values of an OpenEvolve program; ValueError says what is wrong."""
    params = trainable(packet)
    if code_mode(packet):
        lines = [l for l in program.splitlines() if l.strip() not in (START, END)]
        code = "\n".join(lines).strip("\n")
        if not code.strip():
            raise ValueError("the program is empty")
        return {params[0]["name"]: code + "\n"}
    try:
        tree = ast.parse(program)
    except SyntaxError as e:
        raise ValueError(f"the program does not parse: {e}") from None
    found = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "candidate"
    ]
    if len(found) != 1:
        raise ValueError("the program must assign `candidate = {...}` exactly once")
    try:
        value = ast.literal_eval(found[0])
    except ValueError as e:
        raise ValueError(f"`candidate` must be a literal: {e}") from None
    if not isinstance(value, dict):
        raise ValueError("`candidate` must be a dict of parameter name: value")
    names = {p["name"] for p in params}
    if set(value) != names:
        raise ValueError(f"`candidate` must have exactly the keys {sorted(names)}, got {sorted(map(str, value))}")
    out = {}
    for p in params:
        v = value[p["name"]]
        if p["kind"] == "number":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"`{p['name']}` must be a number, got {v!r}")
        elif not isinstance(v, str):
            raise ValueError(f"`{p['name']}` must be a string, got {v!r}")
        out[p["name"]] = v
    return out


def eval_split(packet):
    return "validation" if packet["validation"] else "train"


def feedback_text(result):
    """The examples' feedback for OpenEvolve's prompt (the first ten, each short)."""
    parts = []
    for r in result["results"][:10]:
        fb = str(r.get("feedback") or "").strip()
        if len(fb) > 1500:
            fb = fb[:1500] + " ..."
        parts.append(f"example {r['id']}: score {r['score']}" + (f"\n{fb}" if fb else ""))
    return "\n\n".join(parts) or "(no feedback)"


def evaluate(program_path):
    """OpenEvolve's evaluator: trace-bench scores the program's parameter values."""
    from openevolve.evaluation_result import EvaluationResult

    tb = client()
    packet = tb.packet
    with open(program_path, encoding="utf-8") as f:
        program = f.read()
    try:
        values = parse(packet, program)
        scored = tb.evaluate(values, split=eval_split(packet))
    except (ValueError, TraceBenchError) as e:
        if isinstance(e, TraceBenchError) and e.status != 400:
            raise  # the job is ending: nothing to score
        # Nothing to score: the lowest finite fitness (OpenEvolve writes its database as
        # JSON; a failed evaluation would count as 0, above every negative score), and the
        # reason in the next prompt.
        return EvaluationResult(
            metrics={"combined_score": -sys.float_info.max},
            artifacts={"feedback": f"the candidate could not be read: {e}"},
        )
    score = float(scored["score"])
    best = None
    if os.path.exists(BEST_FILE):
        with open(BEST_FILE, encoding="utf-8") as f:
            best = json.load(f)
    if best is None or score > best["score"]:
        # The first evaluation of a run is the initial program's.
        initial_score = score if best is None else best["initial_score"]
        with open(BEST_FILE, "w", encoding="utf-8") as f:
            json.dump({"score": score, "initial_score": initial_score, "params": values}, f)
        tb.step(values, score)
    return EvaluationResult(
        metrics={"combined_score": score},
        artifacts={"feedback": feedback_text(scored)},
    )


def seeded_ids(label, seed):
    """`uuid.uuid4` drawn from the job seed: OpenEvolve sorts programs by id in places."""
    rng = random.Random(f"openevolve-ids/{seed}/{label}")
    uuid.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)


def fail(message):
    print(f"OpenEvolveTrainer: {message}", file=sys.stderr)
    sys.exit(2)


class Knobs:
    """The job's knobs, typed; a wrong value fails the job with the knob's name."""

    def __init__(self, tb):
        self.tb = tb

    def number(self, name, default, kind=int, minimum=None, optional=False):
        value = self.tb.knob(name, default)
        if value is None and optional:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and kind is int and float(value) != int(value):
            ok = False
        if not ok or (minimum is not None and value < minimum):
            want = "an integer" if kind is int else "a number"
            if minimum is not None:
                want += f" >= {minimum}"
            fail(f"knob `{name}` must be {want}{' or null' if optional else ''}, got {value!r}")
        return kind(value)

    def flag(self, name, default):
        value = self.tb.knob(name, default)
        if not isinstance(value, bool):
            fail(f"knob `{name}` must be true or false, got {value!r}")
        return value


def main():
    tb = client()
    packet = tb.packet
    k = Knobs(tb)
    seed = k.number("seed", packet["seed"])
    iterations = k.number("iterations", 10, minimum=1)
    population = k.number("population_size", None, minimum=1, optional=True)
    islands = k.number("num_islands", None, minimum=1, optional=True)
    patience = k.number("early_stopping_patience", None, minimum=1, optional=True)
    max_code_length = k.number("max_code_length", 10000, minimum=1)
    max_tokens = k.number("max_tokens", 4096, minimum=1)
    temperature = k.number("temperature", 0.7, kind=float, minimum=0)
    threshold = k.number("improvement_threshold", 0.0, kind=float)
    ensure_improvement = k.flag("ensure_improvement", True)
    diff_based = k.flag("diff_based_evolution", True)
    if not trainable(packet):
        fail(f"task `{packet['task_id']}` has no trainable parameter")

    seeded_ids("main", seed)
    import openevolve.process_parallel as pp
    from openevolve import run_evolution
    from openevolve.config import Config, LLMModelConfig

    # The worker process draws its own ids (a fork would repeat the parent's).
    worker_init = pp._worker_init

    def init(*args, **kwargs):
        seeded_ids("worker", seed)
        return worker_init(*args, **kwargs)

    pp._worker_init = init

    cfg = Config(max_iterations=iterations, random_seed=seed)
    cfg.language = "python"
    cfg.log_level = "INFO"
    cfg.diff_based_evolution = diff_based
    cfg.max_code_length = max_code_length
    cfg.early_stopping_patience = patience
    cfg.checkpoint_interval = max(iterations, 1)
    cfg.database.random_seed = seed
    cfg.database.in_memory = True
    if population is not None:
        cfg.database.population_size = population
    if islands is not None:
        cfg.database.num_islands = islands
    cfg.evaluator.parallel_evaluations = 1
    cfg.evaluator.cascade_evaluation = False
    cfg.evaluator.use_llm_feedback = False
    cfg.evaluator.max_retries = 0
    cfg.evaluator.timeout = 7 * 24 * 3600
    cfg.prompt.include_artifacts = True
    model = LLMModelConfig(
        name="tb-proposer",
        api_base=tb.llm_base_url,
        api_key=tb.token,
        temperature=temperature,
        max_tokens=max_tokens,
        timeout=7 * 24 * 3600,
        retries=0,
        retry_delay=0,
        random_seed=seed,
        system_message=cfg.prompt.system_message,
    )
    cfg.llm.models = [model]
    cfg.llm.evaluator_models = [model]

    initial = {p["name"]: p["initial"] for p in packet["parameters"]}
    if os.path.exists(BEST_FILE):
        os.unlink(BEST_FILE)
    result = run_evolution(
        initial_program=render(packet, initial),
        evaluator=os.path.abspath(__file__),
        config=cfg,
        iterations=iterations,
        output_dir=os.path.abspath("openevolve"),
        cleanup=False,
    )
    best = {p["name"]: initial[p["name"]] for p in trainable(packet)}
    best_score = None
    if result.best_program is not None:
        found = result.best_program
        print(
            f"OpenEvolveTrainer: best program {found.id} of iteration {found.iteration_found}",
            file=sys.stderr,
        )
        try:
            best, best_score = parse(packet, result.best_code), float(result.best_score)
        except ValueError as e:
            print(f"OpenEvolveTrainer: the best program cannot be read ({e})", file=sys.stderr)
    with open(os.path.join("openevolve", "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"best_score": best_score, "metrics": result.metrics}, f, default=str)
    initial_score = None
    if os.path.exists(BEST_FILE):
        with open(BEST_FILE, encoding="utf-8") as f:
            initial_score = json.load(f)["initial_score"]
    kept = "best"
    if ensure_improvement and initial_score is not None and best_score is not None:
        if not best_score > initial_score + threshold:
            best = {name: initial[name] for name in best}
            best_score, kept = initial_score, "initial"
    tb.final(
        best,
        best_score,
        optimizer="openevolve.run_evolution",
        kept=kept,
        initial_score=initial_score,
        iterations=iterations,
    )


if __name__ == "__main__":
    main()
