"""An external trainer for trace-bench in plain Python (standard library only).

Hill climbing on the text parameters: show the LLM the current text and the feedback of a
training minibatch, ask for a rewrite, keep it when its validation score is not lower.
Every LLM call and every score goes through trace-bench (tb_client), so this optimizer is
measured like any other. Run it with `trace-bench run --trainers-dir examples/external_trainer`.
"""

import random

from tb_client import Client


def propose(tb, name, text, results):
    feedback = "\n".join(
        f"- input: {r['input']}\n  output: {r['output']}\n  feedback: {r['feedback']}" for r in results
    )
    prompt = (
        f"I provided an assistant with the following instructions:\n```\n{text}\n```\n"
        f"Here are examples of its work with feedback:\n{feedback}\n"
        "Write improved instructions. Provide the new instructions within ``` blocks."
    )
    reply = tb.chat("proposer", [{"role": "user", "content": prompt}])
    parts = reply.split("```")
    if len(parts) >= 3:
        inner = parts[1]
        first, _, rest = inner.partition("\n")
        new = rest if first.strip().isalpha() and rest.strip() else inner
        return new.strip() or text
    return reply.strip() or text


def main():
    tb = Client.from_env()
    rng = random.Random(tb.seed)
    best = tb.initial_params()
    texts = [p["name"] for p in tb.packet["parameters"] if p["trainable"] and p["kind"] != "number"]
    train_ids = [e["id"] for e in tb.packet["train"]]
    split = "validation" if tb.packet["validation"] else "train"
    best_score = tb.evaluate(best, split=split)["score"]
    tb.step(best, best_score)
    for _ in range(int(tb.knobs.get("iterations", 3))):
        batch = rng.sample(train_ids, min(int(tb.knobs.get("batch_size", 2)), len(train_ids)))
        minibatch = tb.evaluate(best, split="train", ids=batch)
        child = dict(best)
        for name in texts:
            child[name] = propose(tb, name, str(best[name]), minibatch["results"])
        scored = tb.evaluate(child, split=split)
        tb.candidate(scored["candidate_id"], scored["score"], parent_id=minibatch["candidate_id"])
        if scored["score"] is not None and (best_score is None or scored["score"] >= best_score):
            best, best_score = child, scored["score"]
        tb.step(best, best_score)
    tb.final(best, best_score)


if __name__ == "__main__":
    main()
