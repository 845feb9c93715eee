//! The reference's `hf:` catalog (`benchmarks/hf_qa/hf_tasks.yaml`), entry by entry, in
//! file order: which Hugging Face dataset, config and splits each id reads, the default
//! counts, the row fields and the task type that shapes and scores a row.

/// How a row becomes a task and how a reply is scored (the reference's `task_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskType {
    /// HotpotQA: character containment of the normalised gold.
    Hfqa,
    /// BIG-Bench Extra Hard: exact match, or the last `(X)` for MCQ golds.
    Bbeh,
    /// GSM8K: the last number of the reply equals the last number of the gold.
    Gsm8k,
    /// Multiple choice: the last label of the reply, else the option text contained.
    Mcqa,
    /// MuSiQue: best alias score (containment, else token F1).
    Musique,
    /// DROP: best alias score over the answer spans.
    Drop,
    /// Qasper (converted mirror): best alias score over the single output.
    Qasper,
    /// StrategyQA: the first yes/no token of the reply.
    StrategyQa,
    /// HumanEval / MBPP: run the candidate against unit tests.
    CodeExec,
}

impl TaskType {
    /// The reference's module key.
    pub fn name(self) -> &'static str {
        match self {
            TaskType::Hfqa => "hfqa",
            TaskType::Bbeh => "bbeh",
            TaskType::Gsm8k => "gsm8k",
            TaskType::Mcqa => "mcqa",
            TaskType::Musique => "musique",
            TaskType::Drop => "drop",
            TaskType::Qasper => "qasper",
            TaskType::StrategyQa => "strategy_qa",
            TaskType::CodeExec => "code_exec",
        }
    }

    /// Whether the QA agent answers (one user message: instructions, context, question).
    pub fn qa_agent(self) -> bool {
        matches!(
            self,
            TaskType::Hfqa | TaskType::Musique | TaskType::Drop | TaskType::Qasper
        )
    }
}

/// `context_format` of the default converter (hotpot_qa and the bbeh family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextFormat {
    /// Empty context.
    None,
    /// `str(raw)`.
    Plain,
    /// The task type's own formatter (paragraphs).
    Module,
}

/// The agent class of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentClass {
    /// Question + context, trainable `meta_instructions`.
    Qa,
    /// Question only, trainable `prompt_template`.
    Bbeh,
    /// Code writer, trainable `prompt_template`.
    Code,
}

/// One catalog entry (a dataset recipe).
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The name after `hf:`.
    pub id: &'static str,
    /// Hugging Face repo id (`org/name`).
    pub dataset_id: &'static str,
    /// Hugging Face config (`name`), if any.
    pub config: Option<&'static str>,
    /// Split of the train and validate partitions (the subtask, when there are subtasks).
    pub train_split: &'static str,
    /// Split of the test partition.
    pub test_split: &'static str,
    /// Default num_train / num_validate / num_test.
    pub counts: [u64; 3],
    /// Question column.
    pub question_field: &'static str,
    /// Answer column.
    pub answer_field: &'static str,
    /// Context column.
    pub context_field: Option<&'static str>,
    /// MCQ options column.
    pub options_field: Option<&'static str>,
    /// Subtracted from an integer MCQ answer.
    pub answer_index_base: i64,
    /// The default converter's context format.
    pub context_format: ContextFormat,
    /// Shaping and scoring.
    pub task_type: TaskType,
    /// The agent.
    pub agent: AgentClass,
    /// Split names expanded into `hf:<id>/<subtask>` ids, in order.
    pub subtasks: &'static [&'static str],
    /// Unit-test column (code_exec).
    pub test_field: Option<&'static str>,
    /// Entry-point column (code_exec).
    pub entry_field: Option<&'static str>,
    /// Setup-code column (code_exec).
    pub setup_field: Option<&'static str>,
}

impl Entry {
    /// The optimizer's objective (the reference's text).
    pub fn objective(&self) -> &'static str {
        TEXTS.iter().find(|t| t.0 == self.id).map_or("", |t| t.1)
    }

    /// The entry's description (the QA agent's label of its instructions).
    pub fn description(&self) -> &'static str {
        TEXTS.iter().find(|t| t.0 == self.id).map_or("", |t| t.2)
    }
}

/// (id, objective, description) of each entry, verbatim from the reference's
/// `hf_tasks.yaml` (Trace-Bench d1469af; YAML `|` blocks keep their final newline).
const TEXTS: &[(&str, &str, &str)] = &[
    (
        "hotpot_qa",
        "You are an expert in agent prompt optimization for HotpotQA (multi-hop reasoning).\nQuestions require reasoning over information spread across multiple context paragraphs.\nYour goal is to optimize meta_instructions described in #Variables for an agent.\n\n#Variables:\n- meta_instructions: General instructions for the agent's reasoning and formatting.\n\nGoal: Create instructions that generalize across all tasks based on local feedback\nfrom specific question-answer pairs.\n",
        "HotpotQA multi-hop reasoning (distractor setting)",
    ),
    (
        "bbeh",
        "You are an expert in agent prompt optimization for BigBench Hard reasoning tasks.\nYour goal is to optimize the prompt_template and answer extraction logic described\nin #Variables so the agent answers a variety of reasoning questions correctly.\n\n#Variables:\n- prompt_template: Instructions and format template given to the LLM.\n- extract_answer: Code that parses the LLM response into a final answer.\n\nGoal: Create a prompt and extraction logic that generalizes across all question\ntypes based on local feedback from specific examples.\n",
        "BigBenchExtraHard — reasoning tasks across 23 subtasks",
    ),
    (
        "bbeh_eight",
        "You are an expert in agent prompt optimization for BigBench Hard reasoning tasks.\nYour goal is to optimize the prompt_template and answer extraction logic described\nin #Variables so the agent answers a variety of reasoning questions correctly.\n\n#Variables:\n- prompt_template: Instructions and format template given to the LLM.\n- extract_answer: Code that parses the LLM response into a final answer.\n\nGoal: Create a prompt and extraction logic that generalizes across all question\ntypes based on local feedback from specific examples.\n",
        "BigBenchExtraHard — 8 curated reasoning subtasks",
    ),
    (
        "musique",
        "Optimize the agent's instructions for connected multi-hop reasoning across multiple paragraphs.\n",
        "MuSiQue compositional multi-hop QA",
    ),
    (
        "gsm8k",
        "Optimize the prompt template and extraction logic for free-form numeric reasoning.\n",
        "GSM8K arithmetic word problems",
    ),
    (
        "arc_challenge",
        "Optimize the prompt template and extraction logic for science multiple-choice reasoning.\n",
        "ARC-Challenge science multiple-choice reasoning",
    ),
    (
        "qasc",
        "Optimize the prompt template and extraction logic for fact-composition science QA.\n",
        "QASC fact-composition science multiple-choice QA",
    ),
    (
        "drop",
        "Optimize instructions for passage-based arithmetic and discrete reasoning.\n",
        "DROP discrete / numerical reasoning over passages",
    ),
    (
        "quality",
        "Optimize the prompt template and extraction logic for long-context multiple-choice reasoning.\n",
        "QuALITY long-context multiple-choice reading comprehension",
    ),
    (
        "qasper",
        "Optimize instructions for information-seeking QA over full research papers.\n",
        "Qasper scholarly long-document QA",
    ),
    (
        "bbeh_horizon",
        "Optimize the prompt_template and extraction logic for multi-step reasoning\nchains where intermediate steps must be tracked to reach the final answer.\n\n#Variables:\n- prompt_template: Instructions and format template given to the LLM.\n- extract_answer: Code that parses the LLM response into a final answer.\n",
        "BBEH long-horizon reasoning subset (for credit_horizon diagnostics)",
    ),
    (
        "aqua_rat",
        "Optimize the prompt template and extraction logic for algebraic word-problem\nreasoning with multiple-choice answers.\n",
        "AQuA-RAT algebraic multiple-choice reasoning",
    ),
    (
        "strategy_qa",
        "Optimize the agent's instructions for implicit multi-step decomposition that\nyields a correct final Yes/No answer.\n",
        "StrategyQA implicit multi-hop yes/no reasoning",
    ),
    (
        "humaneval",
        "Optimize the prompt template and code-generation instructions so the produced\nPython function passes all provided unit tests.\n",
        "HumanEval Python function synthesis (unit-test scored)",
    ),
    (
        "mbpp",
        "Optimize the prompt template and code-generation instructions so the produced\nPython function passes all provided unit tests.\n",
        "MBPP basic Python programming problems (unit-test scored)",
    ),
];

/// The 23 BBEH subtasks, in the catalog's order.
pub const BBEH: &[&str] = &[
    "boardgame_qa",
    "boolean_expressions",
    "buggy_tables",
    "causal_understanding",
    "disambiguation_qa",
    "dyck_languages",
    "geometric_shapes",
    "hyperbaton",
    "linguini",
    "movie_recommendation",
    "multistep_arithmetic",
    "nycc",
    "object_counting",
    "object_properties",
    "sarc_triples",
    "shuffled_objects",
    "spatial_reasoning",
    "sportqa",
    "temporal_sequence",
    "time_arithmetic",
    "web_of_lies",
    "word_sorting",
    "zebra_puzzles",
];

/// The `bbeh_eight` selection, in its order.
pub const BBEH_EIGHT: &[&str] = &[
    "dyck_languages",
    "geometric_shapes",
    "linguini",
    "causal_understanding",
    "disambiguation_qa",
    "boolean_expressions",
    "movie_recommendation",
    "boardgame_qa",
];

/// The `bbeh_horizon` selection, in its order.
pub const BBEH_HORIZON: &[&str] = &[
    "multistep_arithmetic",
    "web_of_lies",
    "dyck_languages",
    "shuffled_objects",
    "temporal_sequence",
    "object_counting",
    "time_arithmetic",
    "zebra_puzzles",
];

const fn qa(id: &'static str, dataset_id: &'static str) -> Entry {
    Entry {
        id,
        dataset_id,
        config: None,
        train_split: "train",
        test_split: "train",
        counts: [10, 0, 0],
        question_field: "question",
        answer_field: "answer",
        context_field: None,
        options_field: None,
        answer_index_base: 0,
        context_format: ContextFormat::None,
        task_type: TaskType::Hfqa,
        agent: AgentClass::Qa,
        subtasks: &[],
        test_field: None,
        entry_field: None,
        setup_field: None,
    }
}

const fn bbeh(id: &'static str, subtasks: &'static [&'static str]) -> Entry {
    Entry {
        question_field: "input",
        answer_field: "target",
        task_type: TaskType::Bbeh,
        agent: AgentClass::Bbeh,
        subtasks,
        ..qa(id, "hubert233/BigBenchExtraHard")
    }
}

/// The catalog, in the reference's file order.
pub const CATALOG: &[Entry] = &[
    Entry {
        config: Some("distractor"),
        test_split: "validation",
        counts: [100, 100, 100],
        context_format: ContextFormat::Module,
        ..qa("hotpot_qa", "hotpotqa/hotpot_qa")
    },
    bbeh("bbeh", BBEH),
    bbeh("bbeh_eight", BBEH_EIGHT),
    Entry {
        test_split: "validation",
        counts: [128, 128, 128],
        context_field: Some("paragraphs"),
        context_format: ContextFormat::Module,
        task_type: TaskType::Musique,
        ..qa("musique", "dgslibisey/MuSiQue")
    },
    Entry {
        config: Some("main"),
        test_split: "test",
        counts: [128, 128, 128],
        task_type: TaskType::Gsm8k,
        agent: AgentClass::Bbeh,
        ..qa("gsm8k", "openai/gsm8k")
    },
    Entry {
        config: Some("ARC-Challenge"),
        test_split: "test",
        counts: [128, 128, 128],
        answer_field: "answerKey",
        options_field: Some("choices"),
        task_type: TaskType::Mcqa,
        agent: AgentClass::Bbeh,
        ..qa("arc_challenge", "allenai/ai2_arc")
    },
    Entry {
        test_split: "test",
        counts: [128, 128, 128],
        answer_field: "answerKey",
        context_field: Some("combinedfact"),
        options_field: Some("choices"),
        context_format: ContextFormat::Plain,
        task_type: TaskType::Mcqa,
        agent: AgentClass::Bbeh,
        ..qa("qasc", "allenai/qasc")
    },
    Entry {
        test_split: "validation",
        counts: [128, 128, 128],
        answer_field: "answers_spans",
        context_field: Some("passage"),
        context_format: ContextFormat::Plain,
        task_type: TaskType::Drop,
        ..qa("drop", "ucinlp/drop")
    },
    Entry {
        test_split: "validation",
        counts: [64, 64, 64],
        context_field: Some("article"),
        options_field: Some("options"),
        answer_index_base: 1,
        context_format: ContextFormat::Plain,
        task_type: TaskType::Mcqa,
        agent: AgentClass::Bbeh,
        ..qa("quality", "emozilla/quality")
    },
    Entry {
        test_split: "validation",
        counts: [128, 128, 128],
        question_field: "input",
        answer_field: "output",
        context_format: ContextFormat::Plain,
        task_type: TaskType::Qasper,
        ..qa("qasper", "abertsch/converted_qasper")
    },
    bbeh("bbeh_horizon", BBEH_HORIZON),
    Entry {
        config: Some("raw"),
        test_split: "test",
        counts: [128, 128, 128],
        answer_field: "correct",
        options_field: Some("options"),
        task_type: TaskType::Mcqa,
        agent: AgentClass::Bbeh,
        ..qa("aqua_rat", "deepmind/aqua_rat")
    },
    Entry {
        test_split: "test",
        counts: [128, 128, 128],
        task_type: TaskType::StrategyQa,
        agent: AgentClass::Bbeh,
        ..qa("strategy_qa", "ChilleD/StrategyQA")
    },
    Entry {
        train_split: "test",
        test_split: "test",
        counts: [41, 41, 82],
        question_field: "prompt",
        answer_field: "entry_point",
        task_type: TaskType::CodeExec,
        agent: AgentClass::Code,
        test_field: Some("test"),
        entry_field: Some("entry_point"),
        ..qa("humaneval", "openai/openai_humaneval")
    },
    Entry {
        config: Some("sanitized"),
        test_split: "test",
        counts: [120, 90, 257],
        question_field: "prompt",
        answer_field: "entry_point",
        task_type: TaskType::CodeExec,
        agent: AgentClass::Code,
        test_field: Some("test_list"),
        entry_field: Some("entry_point"),
        setup_field: Some("test_setup_code"),
        ..qa("mbpp", "google-research-datasets/mbpp")
    },
];

/// The catalog entry named `id` (the part after `hf:` and before `/`).
pub fn entry(id: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|e| e.id == id)
}

/// Every listed `hf:` id, in the reference's order (51).
pub fn listed_ids() -> Vec<String> {
    let mut out = Vec::new();
    for e in CATALOG {
        if e.subtasks.is_empty() {
            out.push(format!("hf:{}", e.id));
        } else {
            out.extend(e.subtasks.iter().map(|s| format!("hf:{}/{s}", e.id)));
        }
    }
    out
}

/// `hf:<entry>` of an entry with subtasks → its subtask ids; anything else → `None`.
pub fn expand_id(id: &str) -> Option<Vec<String>> {
    let name = id.strip_prefix("hf:")?;
    if name.contains('/') {
        return None;
    }
    let e = entry(name).filter(|e| !e.subtasks.is_empty())?;
    Some(
        e.subtasks
            .iter()
            .map(|s| format!("hf:{name}/{s}"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_lists_the_reference_ids_in_order() {
        let ids = listed_ids();
        assert_eq!(ids.len(), 51);
        let reference: Vec<&str> = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tasks/reference_catalog.txt"
        ))
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("hf:"))
        .collect();
        assert_eq!(ids, reference);
        assert_eq!(expand_id("hf:bbeh_eight").unwrap().len(), 8);
        assert_eq!(expand_id("hf:bbeh").unwrap()[22], "hf:bbeh/zebra_puzzles");
        assert_eq!(expand_id("hf:gsm8k"), None);
        assert_eq!(expand_id("hf:bbeh/nycc"), None);
        assert_eq!(expand_id("hf:nope"), None);
        assert!(
            BBEH_EIGHT
                .iter()
                .chain(BBEH_HORIZON)
                .all(|s| BBEH.contains(s))
        );
    }
}
