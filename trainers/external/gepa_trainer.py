"""UpstreamGEPA: the `gepa` package's `gepa.optimize` on any trace-bench task.

Started by trace-bench once per job (docs/external-trainers.md). Candidates are the task's
trainable parameters as text (GEPA's components); the adapter asks trace-bench to run the
task's own agent and scorer on GEPA's minibatches (`/tb/evaluate`), and the reflection LM
is a plain callable sending role `reflection` to the job's loopback endpoint, so no
LiteLLM is involved. Every new best candidate on the validation set is a step; the best
candidate goes back as the job's parameters, which trace-bench re-scores itself.
"""

import json
import sys

from tb_client import Client

tb = Client.from_env()
packet = tb.packet
knob = tb.knob


import gepa  # noqa: E402
from gepa.core.adapter import EvaluationBatch  # noqa: E402

params = packet["parameters"]
components = [p["name"] for p in params if p["trainable"]]
kinds = {p["name"]: p["kind"] for p in params}
seed_candidate = {
    name: p["initial"] if isinstance(p["initial"], str) else json.dumps(p["initial"])
    for name, p in ((p["name"], p) for p in params)
    if name in components
}


def to_params(candidate):
    """GEPA's text components as the task's values (numbers parsed back)."""
    out = {}
    for name, text in candidate.items():
        if kinds.get(name) == "number":
            try:
                value = json.loads(text)
            except (ValueError, TypeError):
                value = text
            out[name] = value
        else:
            out[name] = text
    return out


class TraceBenchAdapter:
    propose_new_texts = None

    def evaluate(self, batch, candidate, capture_traces=False):
        by_split = {}
        for split, example_id in batch:
            by_split.setdefault(split, []).append(example_id)
        rows = {}
        for split, ids in by_split.items():
            scored = tb.evaluate(to_params(candidate), split=split, ids=ids)
            for row in scored["results"]:
                rows[(split, row["id"])] = row
        ordered = [rows[(split, example_id)] for split, example_id in batch]
        return EvaluationBatch(
            outputs=[r["output"] for r in ordered],
            scores=[float(r["score"]) for r in ordered],
            trajectories=ordered if capture_traces else None,
        )

    def make_reflective_dataset(self, candidate, eval_batch, components_to_update):
        records = [
            {
                "Inputs": r["input"] if isinstance(r["input"], str) else json.dumps(r["input"]),
                "Generated Outputs": r["output"],
                "Feedback": r["feedback"],
            }
            for r in (eval_batch.trajectories or [])
        ]
        return {c: records for c in components_to_update}


def reflection_lm(prompt):
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return tb.chat("reflection", messages)


class Progress:
    def on_valset_evaluated(self, event):
        if event.get("is_best_program"):
            tb.step(to_params(event["candidate"]), event.get("average_score"))


train = [("train", e["id"]) for e in packet["train"]]
val = [("validation", e["id"]) for e in packet["validation"]] or train
result = gepa.optimize(
    seed_candidate=seed_candidate,
    trainset=train,
    valset=val,
    adapter=TraceBenchAdapter(),
    reflection_lm=reflection_lm,
    max_metric_calls=int(knob("max_metric_calls", 60)),
    reflection_minibatch_size=int(knob("reflection_minibatch_size", 3)),
    candidate_selection_strategy=knob("candidate_selection_strategy", "pareto"),
    use_merge=bool(knob("use_merge", False)),
    max_merge_invocations=int(knob("max_merge_invocations", 5)),
    skip_perfect_score=bool(knob("skip_perfect_score", True)),
    perfect_score=float(knob("perfect_score", 1.0)),
    module_selector=knob("module_selector", "round_robin"),
    seed=int(knob("seed", packet["seed"])),
    callbacks=[Progress()],
    display_progress_bar=False,
    raise_on_exception=True,
)
best = to_params(result.best_candidate)
score = result.val_aggregate_scores[result.best_idx]
print(
    f"UpstreamGEPA: {len(result.candidates)} candidates, {result.total_metric_calls} metric calls (GEPA's count)",
    file=sys.stderr,
)
tb.final(best, score, optimizer="gepa.optimize", metric_calls=result.total_metric_calls, candidates=len(result.candidates))
