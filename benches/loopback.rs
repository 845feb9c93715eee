//! Benchmark (not a test): what the loopback hop of an external trainer costs.
//!
//! The same requests made in-process and through a job's loopback endpoint (a new TCP
//! connection per request, as Python's `urllib` makes them; the token checked, the JSON
//! parsed, the call handed to the job's thread and answered from there):
//! - `chat`: a DSPy-shaped chat completion answered by the library stub;
//! - `evaluate`: the seeded agent and the task's scorer on 3 examples of
//!   `datasets:arithmetic`, with the results serialised as `/tb/evaluate` answers them.
//!
//! Targets (issue: every optimizer under one roof): the hop adds at most 1 ms per chat call
//! and at most 2 ms per evaluation beyond the work itself, medians over 400 requests each,
//! in-process medians measured in the same run. Exits 1 when either is missed.
//!
//! Run: `cargo bench --bench loopback`

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use trace_bench::backend::library_stub::LibraryStub;
use trace_bench::llm::{ChatRequest, Llm, Message};
use trace_bench::loopback::{self, Route};
use trace_bench::registry::Registry;
use trace_bench::task::SplitName;

const N: usize = 400;
const CHAT_TARGET_MS: f64 = 1.0;
const EVAL_TARGET_MS: f64 = 2.0;
const TOKEN: &str = "bench-token";

fn chat_request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::new(
                "system",
                "Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `answer` (str):\nIn adhering to this structure, your objective is: \n        Answer the question.",
            ),
            Message::new(
                "user",
                "[[ ## question ## ]]\nTom had 200 dollars and spent 135 on a bike. How many dollars does he have left?\n\nRespond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`.",
            ),
        ],
        temperature: None,
        max_tokens: None,
        variables: vec![],
        feedback: String::new(),
        extra: Default::default(),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn post(url: &str, body: &Json) -> Json {
    // A fresh agent: a new connection per request, as urllib makes them.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut r = agent
        .post(url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .expect("the loopback answers");
    let text = r.body_mut().read_to_string().expect("an answer");
    serde_json::from_str(&text).expect("a JSON answer")
}

/// The task's evaluation of its initial prompt on 3 training examples, as `/tb/evaluate`
/// answers it.
fn evaluate_json(task: &trace_bench::task::Task) -> Json {
    let initial = task.initial_values();
    let examples: Vec<_> = task.manifest.splits.train.iter().take(3).collect();
    {
        let eval = task.evaluate(&initial, SplitName::Train, &examples);
        let results: Vec<Json> = eval
            .examples
            .iter()
            .zip(&examples)
            .enumerate()
            .map(|(i, (r, ex))| {
                json!({"id": i, "score": r.score, "feedback": r.feedback, "output": r.output, "input": ex.input})
            })
            .collect();
        json!({"candidate_id": 0, "score": eval.score, "results": results})
    }
}

fn main() {
    let registry = Registry::builtin();
    let task = registry.task("datasets:arithmetic").expect("embedded task");

    // In-process.
    let mut stub = LibraryStub::new(1);
    let request = chat_request();
    let chat_inproc: Vec<f64> = (0..N)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(stub.complete(&request).expect("stub answers"));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let eval_inproc: Vec<f64> = (0..N)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(evaluate_json(&task).to_string());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();

    // Through the loopback: the job's thread does the same work.
    let (server, calls) = loopback::start(TOKEN).expect("listen on loopback");
    let base = server.base_url();
    let job_task = task.clone();
    let job = std::thread::spawn(move || {
        let mut stub = LibraryStub::new(1);
        let request = chat_request();
        while let Ok(call) = calls.recv() {
            match call.route {
                Route::ChatCompletions => {
                    let r = stub.complete(&request).expect("stub answers");
                    call.reply.send(
                        200,
                        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": r.content}}],
                               "usage": {"prompt_tokens": r.usage.prompt_tokens, "completion_tokens": r.usage.completion_tokens}}),
                    );
                }
                _ => call.reply.send(200, evaluate_json(&job_task)),
            }
        }
    });
    let body = json!({"model": "tb-task", "messages": request.messages});
    let chat_url = format!("{base}/v1/chat/completions");
    let eval_url = format!("{base}/tb/evaluate");
    let eval_body = json!({"params": {}, "split": "train", "ids": [0, 1, 2]});
    let mut chat_hop = Vec::new();
    let mut eval_hop = Vec::new();
    for _ in 0..N {
        let t = Instant::now();
        std::hint::black_box(post(&chat_url, &body));
        chat_hop.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        std::hint::black_box(post(&eval_url, &eval_body));
        eval_hop.push(t.elapsed().as_secs_f64() * 1e3);
    }
    drop(server);
    let _ = job.join();

    let chat_added = median(chat_hop.clone()) - median(chat_inproc.clone());
    let eval_added = median(eval_hop.clone()) - median(eval_inproc.clone());
    println!(
        "chat:     in-process median {:.3} ms, through the loopback {:.3} ms: +{chat_added:.3} ms (target <= {CHAT_TARGET_MS} ms)",
        median(chat_inproc),
        median(chat_hop)
    );
    println!(
        "evaluate: in-process median {:.3} ms, through the loopback {:.3} ms: +{eval_added:.3} ms (target <= {EVAL_TARGET_MS} ms)",
        median(eval_inproc),
        median(eval_hop)
    );
    if chat_added > CHAT_TARGET_MS || eval_added > EVAL_TARGET_MS {
        eprintln!("loopback: a target was missed");
        std::process::exit(1);
    }
}
