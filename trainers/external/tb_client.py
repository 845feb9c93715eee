"""trace-bench's external-trainer protocol, client side (Python standard library only).

An external trainer is a program trace-bench starts once per job. It reads the job packet
and talks to trace-bench over HTTP on loopback; every LLM call and every score goes
through trace-bench, so it is counted, cached, rate-limited and scored exactly as a
native trainer's (docs/external-trainers.md). Copy this file next to your own trainer,
or import it from here.

    from tb_client import Client
    tb = Client.from_env()
    text = tb.chat("proposer", [{"role": "user", "content": "..."}])
    result = tb.evaluate({"prompt": "..."}, split="train", ids=[0, 1])
    tb.step({"prompt": "..."}, score=result["score"])
    tb.final({"prompt": "..."})
"""

import json
import os
import urllib.error
import urllib.request


class TraceBenchError(RuntimeError):
    """trace-bench refused a request (the message says why) or the job is ending."""

    def __init__(self, status, message):
        super().__init__(f"trace-bench answered {status}: {message}")
        self.status = status


class Client:
    """One job's endpoints: the packet, the LLM, evaluation and progress."""

    def __init__(self, base_url, token, packet_path=None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        if packet_path and os.path.exists(packet_path):
            with open(packet_path, encoding="utf-8") as f:
                self.packet = json.load(f)
        else:
            self.packet = self._request("GET", "/tb/packet")

    @classmethod
    def from_env(cls):
        """The client of the job that started this process (TB_URL, TB_TOKEN, TB_PACKET)."""
        return cls(os.environ["TB_URL"], os.environ["TB_TOKEN"], os.environ.get("TB_PACKET"))

    @property
    def llm_base_url(self):
        """The OpenAI-compatible base URL (``.../v1``) for libraries that take one."""
        return self.base_url + "/v1"

    @property
    def seed(self):
        return self.packet["seed"]

    @property
    def knobs(self):
        return self.packet.get("knobs", {})

    def knob(self, name, default=None):
        """A knob's value (configured, else the preset's default), or `default` when unset."""
        value = self.knobs.get(name)
        return default if value is None else value

    def initial_params(self):
        """Every parameter's initial value, by name."""
        return {p["name"]: p["initial"] for p in self.packet["parameters"]}

    def _request(self, method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=3600) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")
            try:
                message = json.loads(body)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = body
            raise TraceBenchError(e.code, message) from None

    def chat(self, role, messages, **options):
        """One chat completion as `role` (task, prompt, reflection, proposer, ...): its text.

        `options` are OpenAI body fields (temperature, max_tokens, response_format, ...).
        """
        body = dict(options, model="tb-" + role, messages=messages)
        reply = self._request("POST", "/v1/chat/completions", body)
        return reply["choices"][0]["message"]["content"]

    def evaluate(self, params, split="train", ids=None):
        """Score parameters on examples of `split` (train or validation; all when `ids` is
        None): trace-bench runs the task's agent and scorer. Returns ``{"candidate_id",
        "score", "results": [{"id", "score", "feedback", "output", "input"}]}``."""
        return self._request("POST", "/tb/evaluate", {"params": params, "split": split, "ids": ids})

    def score(self, split, example_id, response):
        """Score one reply to one example (when your library runs the task program):
        ``{"score", "feedback"}``."""
        return self._request(
            "POST", "/tb/score", {"split": split, "id": example_id, "response": response}
        )

    def step(self, best_params, score=None):
        """Close a step: the parameters you would return now, and your own score for them
        (recorded as your estimate; trace-bench scores them itself)."""
        return self._request(
            "POST", "/tb/progress", {"event": "step", "best_params": best_params, "score": score}
        )

    def candidate(self, candidate_id, score=None, parent_id=None):
        """Report a candidate you evaluated (its id from `evaluate`)."""
        return self._request(
            "POST",
            "/tb/progress",
            {"event": "candidate", "candidate_id": candidate_id, "score": score, "parent_id": parent_id},
        )

    def final(self, best_params, score=None, **info):
        """Hand back the result; trace-bench re-scores it on validation and test."""
        return self._request(
            "POST", "/tb/final", {"best_params": best_params, "score": score, "info": info}
        )
