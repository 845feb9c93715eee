"""DSPyTrainer: DSPy's MIPROv2, COPRO, SIMBA, GEPA or BootstrapFewShot on a trace-bench prompt task.

Started by trace-bench once per job (docs/external-trainers.md). The task's prompt
parameter becomes the instructions of one `dspy.Predict` whose inputs are the example's
fields; every LM role (task program, prompt model, teacher, reflection) is a `dspy.LM`
pointed at the job's loopback endpoint with a role-tagged model name, DSPy's caches off
and its retries off (trace-bench owns both); the metric asks trace-bench to score each
reply. The optimised program's instructions (and any demos, rendered as examples) go back
as the prompt parameter, which trace-bench re-scores itself.
"""

import json
import sys

from tb_client import Client

tb = Client.from_env()
packet = tb.packet
knob = tb.knob


def fail(message):
    print(f"DSPyTrainer: {message}", file=sys.stderr)
    sys.exit(2)


prompt_param = packet.get("prompt_param")
if not prompt_param or not packet.get("scores_replies"):
    fail(
        f"task `{packet['task_id']}` has no prompt parameter scored on replies; "
        "DSPyTrainer runs on prompt tasks (datasets:*, hf:*)"
    )

import dspy  # noqa: E402  (after the checks: a clear message beats an import error)

optimizer_name = knob("dspy_optimizer") or (
    "copro" if packet["trainer_id"] == "DSPyCOPROTrainer" else "mipro"
)
if optimizer_name not in ("mipro", "copro", "simba", "gepa", "bootstrap"):
    fail(f"dspy_optimizer must be mipro, copro, simba, gepa or bootstrap, not {optimizer_name!r}")
seed = knob("seed", packet["seed"])
threads = int(knob("num_threads", 1) or 1)


def lm(role, **kw):
    """One LM per role; the model name tells trace-bench who is calling."""
    return dspy.LM(
        f"openai/tb-{role}",
        api_base=tb.llm_base_url,
        api_key=tb.token,
        cache=False,
        num_retries=0,
        timeout=3600,
        engine="lm15",
        **kw,
    )


dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
dspy.configure(lm=lm("task"), track_usage=False)

initial = next(p["initial"] for p in packet["parameters"] if p["name"] == prompt_param)


def fields_of(example_input):
    if isinstance(example_input, dict) and example_input:
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in example_input.items()}
    if isinstance(example_input, str):
        return {"question": example_input}
    return {"question": json.dumps(example_input)}


def answer_of(info):
    if isinstance(info, dict):
        for key in ("answer", "target", "label", "output"):
            if key in info:
                value = info[key]
                return value if isinstance(value, str) else json.dumps(value)
        return None
    return None if info is None else str(info)


train_rows = packet["train"]
val_rows = packet["validation"]
input_names = list(fields_of(train_rows[0]["input"]).keys()) if train_rows else ["question"]
signature = dspy.Signature(", ".join(input_names) + " -> answer").with_instructions(str(initial))


def to_example(row, split):
    fields = fields_of(row["input"])
    fields = {name: fields.get(name, "") for name in input_names}
    extra = {}
    if split == "train":
        answer = answer_of(row.get("info"))
        if answer is not None:
            extra["answer"] = answer
    return dspy.Example(**fields, **extra, tb_split=split, tb_id=row["id"]).with_inputs(*input_names)


train = [to_example(r, "train") for r in train_rows]
val = [to_example(r, "validation") for r in val_rows] or train


class Program(dspy.Module):
    def __init__(self):
        super().__init__()
        self.prog = dspy.Predict(signature)

    def forward(self, **inputs):
        return self.prog(**inputs)


def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
    response = getattr(pred, "answer", None)
    if response is None:
        response = str(pred)
    scored = tb.score(gold.tb_split, gold.tb_id, response)
    if pred_name is not None:
        return dspy.Prediction(score=scored["score"], feedback=scored["feedback"])
    return scored["score"]


def build():
    if optimizer_name == "mipro":
        auto = knob("auto", "light")
        kwargs = dict(
            metric=metric,
            prompt_model=lm("prompt"),
            task_model=dspy.settings.lm,
            teacher_settings={"lm": lm("teacher")},
            auto=auto,
            max_bootstrapped_demos=int(knob("max_bootstrapped_demos", 4)),
            max_labeled_demos=int(knob("max_labeled_demos", 4)),
            num_threads=threads,
            seed=int(seed),
            init_temperature=float(knob("init_temperature", 1.0)),
            track_stats=True,
            verbose=bool(knob("verbose", False)),
        )
        if auto is None:
            kwargs["num_candidates"] = int(knob("num_candidates", 6))
        compile_kwargs = dict(trainset=train, valset=val)
        if auto is None:
            compile_kwargs["num_trials"] = int(knob("num_trials") or max(2, kwargs["num_candidates"]))
            compile_kwargs["minibatch"] = len(val) >= 35
        elif knob("num_trials") is not None or knob("num_candidates") is not None:
            print("DSPyTrainer: num_candidates/num_trials are ignored while `auto` is set", file=sys.stderr)
        return dspy.MIPROv2(**kwargs), compile_kwargs
    if optimizer_name == "copro":
        return (
            dspy.COPRO(
                prompt_model=lm("prompt"),
                metric=metric,
                breadth=int(knob("breadth", 10)),
                depth=int(knob("depth", 3)),
                init_temperature=float(knob("init_temperature", 1.0)),
                track_stats=True,
            ),
            dict(trainset=train, eval_kwargs={"num_threads": threads, "display_progress": False, "display_table": 0}),
        )
    if optimizer_name == "simba":
        bsize = int(knob("bsize", 32))
        if bsize > len(train):
            print(f"DSPyTrainer: bsize {bsize} > {len(train)} training examples; using {len(train)}", file=sys.stderr)
            bsize = len(train)
        return (
            dspy.SIMBA(
                metric=metric,
                bsize=bsize,
                num_candidates=int(knob("num_candidates", 6)),
                max_steps=int(knob("max_steps", 8)),
                max_demos=int(knob("max_demos", 4)),
                prompt_model=lm("prompt"),
                num_threads=threads,
            ),
            dict(trainset=train, seed=int(seed)),
        )
    if optimizer_name == "bootstrap":
        # DSPy's few-shot baseline: the teacher answers the training examples; those the
        # metric accepts (score > 0) become demos, topped up with labeled examples. No
        # instructions change and it takes no seed (its order is the training split's).
        return (
            dspy.BootstrapFewShot(
                metric=metric,
                teacher_settings={"lm": lm("teacher")},
                max_bootstrapped_demos=int(knob("max_bootstrapped_demos", 4)),
                max_labeled_demos=int(knob("max_labeled_demos", 4)),
                max_rounds=int(knob("max_rounds", 1)),
            ),
            dict(trainset=train),
        )
    budget = {}
    for name in ("max_metric_calls", "max_full_evals"):
        if knob(name) is not None:
            budget[name] = int(knob(name))
    if not budget:
        budget["auto"] = knob("auto", "light")
    return (
        dspy.GEPA(
            metric=metric,
            reflection_minibatch_size=int(knob("reflection_minibatch_size", 3)),
            reflection_lm=lm("reflection"),
            num_threads=threads,
            seed=int(seed),
            track_stats=True,
            **budget,
        ),
        dict(trainset=train, valset=val),
    )


def prompt_of(program):
    """The optimised instructions, with any demos rendered as worked examples."""
    predictor = program.prog
    text = predictor.signature.instructions
    demos = getattr(predictor, "demos", None) or []
    lines = []
    for demo in demos:
        data = dict(demo.items()) if hasattr(demo, "items") else dict(demo)
        shown = [f"{k}: {data[k]}" for k in input_names if k in data]
        if "answer" in data:
            shown.append(f"answer: {data['answer']}")
        if shown:
            lines.append("\n".join(shown))
    if lines:
        text = text + "\n\nExamples:\n\n" + "\n\n".join(lines)
    return text


optimizer, compile_kwargs = build()
best = optimizer.compile(Program(), **compile_kwargs)
params = {prompt_param: prompt_of(best)}
claimed = getattr(best, "score", None)
tb.step(params, claimed if isinstance(claimed, (int, float)) else None)
tb.final(params, claimed if isinstance(claimed, (int, float)) else None, optimizer=f"dspy.{type(optimizer).__name__}")
