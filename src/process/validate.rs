//! Checking a [`Flow`] when it is defined: every problem is reported at once, each with the
//! block it is in and why ([`FlowError`]), and a flow with any problem can never start.
//!
//! | problem | [`FlowProblem`] |
//! |---|---|
//! | no start, or a start that names no block | [`NoStart`](FlowProblem::NoStart) |
//! | two blocks with one id, or an empty id | [`DuplicateId`](FlowProblem::DuplicateId), [`EmptyId`](FlowProblem::EmptyId) |
//! | a transition to a block that does not exist | [`MissingTarget`](FlowProblem::MissingTarget) |
//! | a block no path from the start reaches | [`Unreachable`](FlowProblem::Unreachable) |
//! | a question with no option or more than the limit (3, fewer if a transport shows fewer) | [`NoOptions`](FlowProblem::NoOptions), [`TooManyOptions`](FlowProblem::TooManyOptions) |
//! | an option label that is empty (or only spaces and punctuation, which typed text could never match), longer than the transport allows, or the same as another once case and accents are ignored | [`EmptyLabel`](FlowProblem::EmptyLabel), [`LabelTooLong`](FlowProblem::LabelTooLong), [`DuplicateLabel`](FlowProblem::DuplicateLabel) |
//! | a text that is empty or is not a valid template | [`EmptyText`](FlowProblem::EmptyText), [`Template`](FlowProblem::Template) |
//! | a branch on an answer to a block that is not a question, or on a label it does not offer | [`NotAQuestion`](FlowProblem::NotAQuestion), [`UnknownAnswer`](FlowProblem::UnknownAnswer) |
//! | an empty field name | [`EmptyField`](FlowProblem::EmptyField) |
//! | a wait or an answer timeout of zero seconds | [`ZeroDuration`](FlowProblem::ZeroDuration) |
//! | a cycle of blocks that never wait (it would send forever) | [`EndlessLoop`](FlowProblem::EndlessLoop) |
//!
//! The label limit is not a Messenger constant: [`Limits`] comes from the engine's transports'
//! [`Capabilities`] (or is set by the host).
//!
//! ```
//! use tidings::process::{FlowId, flow::Flow, validate::{FlowProblem, Limits}};
//!
//! let flow = Flow::builder(FlowId::new("broken")?, 1)
//!     .question("ask", "Pick one", |q| {
//!         q.option("One", "done").option("Two", "done").option("Three", "done").option("Four", "nowhere")
//!     })
//!     .end("done")
//!     .end("orphan")
//!     .build();
//! let errors = flow.validate(&Limits::new().with_max_label_len(Some(20))).unwrap_err();
//! let problems: Vec<_> = errors.iter().map(|e| (e.block.as_deref(), &e.problem)).collect();
//! assert!(problems.contains(&(Some("ask"), &FlowProblem::TooManyOptions { count: 4, max: 3 })));
//! assert!(problems.contains(&(Some("ask"), &FlowProblem::MissingTarget { target: "nowhere".into() })));
//! assert!(problems.contains(&(Some("orphan"), &FlowProblem::Unreachable)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    collections::{HashMap, HashSet},
    fmt,
    time::Duration,
};

use super::{
    flow::{Block, BlockKind, Condition, Flow, FreeText},
    text::normalize,
};
use crate::{
    message::ChoiceStyle,
    template::{Template, TemplateError},
    transport::{Capabilities, Intent},
};

/// The most options a callback operation may offer, whatever the transport.
pub const MAX_OPTIONS: usize = 3;

/// What flows are checked against: how many options a question may offer and how long a label
/// may be. Built from the transports' [`Capabilities`] so the core knows no transport's
/// numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most options per question (at most [`MAX_OPTIONS`]).
    pub max_options: usize,
    /// Longest option label, in characters (`None`: no limit).
    pub max_label_len: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new()
    }
}

impl Limits {
    /// [`MAX_OPTIONS`] options, labels of any length.
    pub fn new() -> Self {
        Limits {
            max_options: MAX_OPTIONS,
            max_label_len: None,
        }
    }

    /// Sets the longest label.
    pub fn with_max_label_len(mut self, chars: Option<usize>) -> Self {
        self.max_label_len = chars;
        self
    }

    /// Sets the most options per question (capped at [`MAX_OPTIONS`]).
    pub fn with_max_options(mut self, max: usize) -> Self {
        self.max_options = max.min(MAX_OPTIONS);
        self
    }

    /// These limits narrowed to what a transport with `caps` can show.
    pub fn narrowed_to(mut self, caps: &Capabilities) -> Self {
        self.max_options = self.max_options.min(caps.max_choices);
        self.max_label_len = match (self.max_label_len, caps.max_choice_label_len) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self
    }
}

/// What is wrong with a flow, or with one of its blocks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowProblem {
    /// The flow names no start block, or one that does not exist.
    #[error("the flow has no start block{}", .0.as_ref().map(|s| format!(" ({s:?} does not exist)")).unwrap_or_default())]
    NoStart(Option<String>),
    /// The block's id is empty.
    #[error("empty block id")]
    EmptyId,
    /// Another block has the same id.
    #[error("another block has the same id")]
    DuplicateId,
    /// A transition leads to a block that does not exist.
    #[error("leads to block {target:?}, which does not exist")]
    MissingTarget {
        /// The missing block's id.
        target: String,
    },
    /// No path from the start reaches the block.
    #[error("no path from the start reaches this block")]
    Unreachable,
    /// A question without options.
    #[error("a question needs at least one answer option")]
    NoOptions,
    /// A question with more options than allowed.
    #[error("{count} answer options, at most {max} are allowed")]
    TooManyOptions {
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An option label is empty, or only spaces and punctuation (typed text is compared
    /// without them, so nothing typed could match it).
    #[error("answer option {index} has an empty label")]
    EmptyLabel {
        /// The option's position (0-based).
        index: usize,
    },
    /// An option label is longer than the transports show.
    #[error("label {label:?} is {len} characters long, at most {max} are shown")]
    LabelTooLong {
        /// The label.
        label: String,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Two labels are the same once case and accents are ignored, so typed text could not
    /// tell them apart.
    #[error("label {label:?} is given twice (ignoring case and accents)")]
    DuplicateLabel {
        /// The second label.
        label: String,
    },
    /// A message or question text is empty.
    #[error("empty text")]
    EmptyText,
    /// A text is not a valid template.
    #[error("invalid template: {0}")]
    Template(TemplateError),
    /// A branch tests the answer to a block that is not a question.
    #[error("branches on the answer to {question:?}, which is not a question of this flow")]
    NotAQuestion {
        /// The block named.
        question: String,
    },
    /// A branch tests for a label the question does not offer.
    #[error("branches on answer {label:?} of {question:?}, which offers no such option")]
    UnknownAnswer {
        /// The question.
        question: String,
        /// The label.
        label: String,
    },
    /// A field name is empty.
    #[error("empty field name")]
    EmptyField,
    /// A wait or an answer timeout of zero seconds (a wait that does not wait, a question
    /// that times out as it is asked).
    #[error("a duration of zero seconds")]
    ZeroDuration,
    /// The block is on a cycle of blocks that never wait (send, branch, set field), which
    /// would run forever (and send without end).
    #[error("on a cycle that never waits for an answer, a wait or an agent")]
    EndlessLoop,
}

/// One problem of a flow: the block it is in (`None` for the flow as a whole) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowError {
    /// The block's id, when the problem is in a block.
    pub block: Option<String>,
    /// What is wrong.
    pub problem: FlowProblem,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.block {
            Some(block) => write!(f, "block {block:?}: {}", self.problem),
            None => write!(f, "flow: {}", self.problem),
        }
    }
}

impl std::error::Error for FlowError {}

/// Every problem of a flow that was refused (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowErrors(Vec<FlowError>);

impl FlowErrors {
    /// The problems, in block order.
    pub fn iter(&self) -> impl Iterator<Item = &FlowError> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a refused flow has at least one problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for FlowErrors {
    type Item = FlowError;
    type IntoIter = std::vec::IntoIter<FlowError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for FlowErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid flow ({} problems)", self.0.len())?;
        for e in &self.0 {
            write!(f, "; {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FlowErrors {}

impl Flow {
    /// Checks the flow against `limits`; see the [module docs](self).
    pub fn validate(&self, limits: &Limits) -> Result<(), FlowErrors> {
        compile(self, limits).map(|_| ())
    }
}

/// A checked flow, with templates compiled and transitions resolved to block positions.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) flow: Flow,
    index: HashMap<String, usize>,
    pub(crate) steps: Vec<Step>,
}

impl Compiled {
    /// The position of block `id`.
    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The id of the block at `position`.
    pub(crate) fn id(&self, position: usize) -> &str {
        self.flow.blocks.get(position).map_or("", |b| b.id.as_str())
    }

    pub(crate) fn start(&self) -> &str {
        self.flow.start.as_deref().unwrap_or("")
    }
}

#[derive(Debug)]
pub(crate) struct CompiledOption {
    pub(crate) label: String,
    pub(crate) normalized: String,
    pub(crate) next: usize,
}

#[derive(Debug)]
pub(crate) enum OnText {
    Inbox,
    Reprompt,
    Goto(usize),
}

#[derive(Debug)]
pub(crate) enum Test {
    Field {
        name: String,
        equals: Option<serde_json::Value>,
    },
    Answer {
        question: String,
        label: String,
    },
}

#[derive(Debug)]
pub(crate) enum Step {
    Send {
        text: Template,
        next: usize,
        purpose: Intent,
    },
    Question {
        text: Template,
        purpose: Intent,
        options: Vec<CompiledOption>,
        style: Option<ChoiceStyle>,
        on_text: OnText,
        timeout: Option<(Duration, usize)>,
    },
    Wait {
        duration: Duration,
        next: usize,
    },
    Branch {
        cases: Vec<(Test, usize)>,
        otherwise: usize,
    },
    SetField {
        field: String,
        value: serde_json::Value,
        next: usize,
    },
    Handover {
        text: Option<Template>,
        next: usize,
        purpose: Intent,
    },
    End,
}

struct Checker<'a> {
    errors: Vec<FlowError>,
    index: &'a HashMap<String, usize>,
    block: &'a str,
}

impl Checker<'_> {
    fn problem(&mut self, problem: FlowProblem) {
        self.errors.push(FlowError {
            block: Some(self.block.to_owned()),
            problem,
        });
    }

    fn target(&mut self, target: &str) -> usize {
        match self.index.get(target) {
            Some(i) => *i,
            None => {
                self.problem(FlowProblem::MissingTarget {
                    target: target.to_owned(),
                });
                usize::MAX
            }
        }
    }

    fn template(&mut self, text: &str) -> Option<Template> {
        if text.trim().is_empty() {
            self.problem(FlowProblem::EmptyText);
            return None;
        }
        match Template::compile(text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(FlowProblem::Template(e));
                None
            }
        }
    }
}

/// Checks and compiles `flow`.
pub(crate) fn compile(flow: &Flow, limits: &Limits) -> Result<Compiled, FlowErrors> {
    let mut errors = Vec::new();
    let mut index = HashMap::with_capacity(flow.blocks.len());
    for (i, block) in flow.blocks.iter().enumerate() {
        if block.id.is_empty() {
            errors.push(FlowError {
                block: Some(String::new()),
                problem: FlowProblem::EmptyId,
            });
        } else if index.insert(block.id.clone(), i).is_some() {
            errors.push(FlowError {
                block: Some(block.id.clone()),
                problem: FlowProblem::DuplicateId,
            });
            // Keep the first block under its id.
            if let Some(first) = flow.blocks.iter().position(|b| b.id == block.id) {
                index.insert(block.id.clone(), first);
            }
        }
    }
    let start = match flow.start.as_deref() {
        Some(s) if index.contains_key(s) => index.get(s).copied(),
        other => {
            errors.push(FlowError {
                block: None,
                problem: FlowProblem::NoStart(other.filter(|s| !s.is_empty()).map(str::to_owned)),
            });
            None
        }
    };

    let mut steps = Vec::with_capacity(flow.blocks.len());
    let mut checker = Checker {
        errors,
        index: &index,
        block: "",
    };
    for block in &flow.blocks {
        checker.block = &block.id;
        steps.push(check_block(&mut checker, flow, block, limits));
    }
    let mut errors = checker.errors;

    if let Some(start) = start {
        let mut reached = vec![false; flow.blocks.len()];
        let mut todo = vec![start];
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut reached[i], true) {
                continue;
            }
            todo.extend(
                successors(&flow.blocks[i].kind)
                    .filter_map(|t| index.get(t).copied())
                    .filter(|t| !reached[*t]),
            );
        }
        for (i, block) in flow.blocks.iter().enumerate() {
            if !reached[i] && index.get(&block.id) == Some(&i) {
                errors.push(FlowError {
                    block: Some(block.id.clone()),
                    problem: FlowProblem::Unreachable,
                });
            }
        }
    }

    if let Some(block) = endless_loop(flow, &index) {
        errors.push(FlowError {
            block: Some(block.to_owned()),
            problem: FlowProblem::EndlessLoop,
        });
    }

    if !errors.is_empty() {
        // Block order, the flow-wide problems first.
        let position = |e: &FlowError| match &e.block {
            None => 0,
            Some(id) => index.get(id).map_or(0, |i| i + 1),
        };
        errors.sort_by_key(position);
        return Err(FlowErrors(errors));
    }
    let steps = steps.into_iter().collect::<Option<Vec<_>>>();
    match steps {
        Some(steps) => Ok(Compiled {
            flow: flow.clone(),
            index,
            steps,
        }),
        // Every block that failed to compile reported a problem, so this is not reached.
        None => Err(FlowErrors(vec![FlowError {
            block: None,
            problem: FlowProblem::NoStart(None),
        }])),
    }
}

/// A block on a cycle made only of blocks that do not wait, if there is one.
fn endless_loop<'f>(flow: &'f Flow, index: &HashMap<String, usize>) -> Option<&'f str> {
    let passes = |kind: &BlockKind| {
        matches!(
            kind,
            BlockKind::Send { .. } | BlockKind::Branch { .. } | BlockKind::SetField { .. }
        )
    };
    // 0: not visited, 1: on the current path, 2: done.
    let mut state = vec![0u8; flow.blocks.len()];
    for root in 0..flow.blocks.len() {
        if state[root] != 0 || !passes(&flow.blocks[root].kind) {
            continue;
        }
        let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
        let next_of = |i: usize| -> Vec<usize> {
            successors(&flow.blocks[i].kind)
                .filter_map(|t| index.get(t).copied())
                .filter(|t| passes(&flow.blocks[*t].kind))
                .collect()
        };
        state[root] = 1;
        stack.push((root, next_of(root)));
        while let Some((node, pending)) = stack.last_mut() {
            match pending.pop() {
                Some(t) if state[t] == 1 => return Some(flow.blocks[t].id.as_str()),
                Some(t) if state[t] == 0 => {
                    state[t] = 1;
                    let next = next_of(t);
                    stack.push((t, next));
                }
                Some(_) => {}
                None => {
                    state[*node] = 2;
                    stack.pop();
                }
            }
        }
    }
    None
}

fn successors(kind: &BlockKind) -> Box<dyn Iterator<Item = &str> + '_> {
    match kind {
        BlockKind::Send { next, .. }
        | BlockKind::Wait { next, .. }
        | BlockKind::SetField { next, .. }
        | BlockKind::Handover { next, .. } => Box::new(std::iter::once(next.as_str())),
        BlockKind::Question(q) => Box::new(
            q.options
                .iter()
                .map(|o| o.next.as_str())
                .chain(match &q.on_text {
                    FreeText::Goto(next) => Some(next.as_str()),
                    _ => None,
                })
                .chain(q.timeout.as_ref().map(|t| t.next.as_str())),
        ),
        BlockKind::Branch { cases, otherwise } => Box::new(
            cases
                .iter()
                .map(|c| c.next.as_str())
                .chain(std::iter::once(otherwise.as_str())),
        ),
        BlockKind::End => Box::new(std::iter::empty()),
    }
}

fn check_block(c: &mut Checker<'_>, flow: &Flow, block: &Block, limits: &Limits) -> Option<Step> {
    match &block.kind {
        BlockKind::Send {
            text,
            next,
            purpose,
        } => {
            let next = c.target(next);
            let text = c.template(text)?;
            Some(Step::Send {
                text,
                next,
                purpose: purpose.unwrap_or(flow.purpose),
            })
        }
        BlockKind::Question(q) => {
            let text = c.template(&q.text);
            if q.options.is_empty() {
                c.problem(FlowProblem::NoOptions);
            }
            if q.options.len() > limits.max_options {
                c.problem(FlowProblem::TooManyOptions {
                    count: q.options.len(),
                    max: limits.max_options,
                });
            }
            let mut options = Vec::with_capacity(q.options.len());
            let mut seen = HashSet::new();
            for (index, option) in q.options.iter().enumerate() {
                let normalized = normalize(&option.label);
                let len = option.label.chars().count();
                // A label of only spaces or punctuation could never be typed: typed text is
                // compared without them.
                if normalized.is_empty() {
                    c.problem(FlowProblem::EmptyLabel { index });
                } else if let Some(max) = limits.max_label_len.filter(|max| len > *max) {
                    c.problem(FlowProblem::LabelTooLong {
                        label: option.label.clone(),
                        len,
                        max,
                    });
                }
                if !normalized.is_empty() && !seen.insert(normalized.clone()) {
                    c.problem(FlowProblem::DuplicateLabel {
                        label: option.label.clone(),
                    });
                }
                let next = c.target(&option.next);
                options.push(CompiledOption {
                    label: option.label.clone(),
                    normalized,
                    next,
                });
            }
            let on_text = match &q.on_text {
                FreeText::Inbox => OnText::Inbox,
                FreeText::Reprompt => OnText::Reprompt,
                FreeText::Goto(next) => OnText::Goto(c.target(next)),
            };
            let timeout = q.timeout.as_ref().map(|t| {
                if t.after_secs == 0 {
                    c.problem(FlowProblem::ZeroDuration);
                }
                (Duration::from_secs(t.after_secs), c.target(&t.next))
            });
            Some(Step::Question {
                text: text?,
                purpose: q.purpose.unwrap_or(flow.purpose),
                options,
                style: q.style,
                on_text,
                timeout,
            })
        }
        BlockKind::Wait { secs, next } => {
            if *secs == 0 {
                c.problem(FlowProblem::ZeroDuration);
            }
            Some(Step::Wait {
                duration: Duration::from_secs(*secs),
                next: c.target(next),
            })
        }
        BlockKind::Branch { cases, otherwise } => {
            let mut compiled = Vec::with_capacity(cases.len());
            for case in cases {
                let test = match &case.when {
                    Condition::Field { name, equals } => {
                        if name.trim().is_empty() {
                            c.problem(FlowProblem::EmptyField);
                        }
                        Test::Field {
                            name: name.clone(),
                            equals: equals.clone(),
                        }
                    }
                    Condition::Answer { question, label } => {
                        match flow.block(question).map(|b| &b.kind) {
                            Some(BlockKind::Question(q)) => {
                                let wanted = normalize(label);
                                if !q.options.iter().any(|o| normalize(&o.label) == wanted) {
                                    c.problem(FlowProblem::UnknownAnswer {
                                        question: question.clone(),
                                        label: label.clone(),
                                    });
                                }
                            }
                            _ => c.problem(FlowProblem::NotAQuestion {
                                question: question.clone(),
                            }),
                        }
                        Test::Answer {
                            question: question.clone(),
                            label: normalize(label),
                        }
                    }
                };
                compiled.push((test, c.target(&case.next)));
            }
            Some(Step::Branch {
                cases: compiled,
                otherwise: c.target(otherwise),
            })
        }
        BlockKind::SetField { field, value, next } => {
            if field.trim().is_empty() {
                c.problem(FlowProblem::EmptyField);
            }
            Some(Step::SetField {
                field: field.clone(),
                value: value.clone(),
                next: c.target(next),
            })
        }
        BlockKind::Handover { text, next } => {
            let next = c.target(next);
            let text = match text {
                Some(t) => Some(c.template(t)?),
                None => None,
            };
            Some(Step::Handover {
                text,
                next,
                purpose: flow.purpose,
            })
        }
        BlockKind::End => Some(Step::End),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::FlowId;

    fn id() -> FlowId {
        FlowId::new("f").unwrap()
    }

    fn problems(flow: &Flow, limits: &Limits) -> Vec<(Option<String>, FlowProblem)> {
        flow.validate(limits)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.block, e.problem))
            .collect()
    }

    fn at(block: &str, problem: FlowProblem) -> (Option<String>, FlowProblem) {
        (Some(block.to_owned()), problem)
    }

    #[test]
    fn a_valid_flow_compiles() {
        let flow = Flow::builder(id(), 1)
            .question("q", "Hi {{ first_name | default('you') }}?", |q| {
                q.option("Yes", "end").option("No", "end")
            })
            .end("end")
            .build();
        assert!(flow.validate(&Limits::new()).is_ok());
    }

    #[test]
    fn every_problem_is_named_with_its_block() {
        let flow = Flow::builder(id(), 1)
            .question("q", "Pick", |q| {
                q.option("One", "end")
                    .option("one", "end")
                    .option("A label longer than twenty", "end")
                    .option("", "ghost")
            })
            .question("empty", "Nothing to pick", |q| q)
            .send("bad", "Hi {{ frist_name }}", "end")
            .send("blank", "  ", "end")
            .branch("b", "end", |b| {
                b.answered("bad", "Yes", "end")
                    .answered("q", "Maybe", "end")
                    .field_set("", "end")
            })
            .set_field("set", " ", 1, "end")
            .end("end")
            .end("end")
            .build();
        let limits = Limits::new().with_max_label_len(Some(20));
        let got = problems(&flow, &limits);
        let expected = [
            at("q", FlowProblem::TooManyOptions { count: 4, max: 3 }),
            at(
                "q",
                FlowProblem::DuplicateLabel {
                    label: "one".into(),
                },
            ),
            at(
                "q",
                FlowProblem::LabelTooLong {
                    label: "A label longer than twenty".into(),
                    len: 26,
                    max: 20,
                },
            ),
            at("q", FlowProblem::EmptyLabel { index: 3 }),
            at(
                "q",
                FlowProblem::MissingTarget {
                    target: "ghost".into(),
                },
            ),
            at("empty", FlowProblem::NoOptions),
            at("empty", FlowProblem::Unreachable),
            at("bad", FlowProblem::Unreachable),
            at("blank", FlowProblem::EmptyText),
            at("blank", FlowProblem::Unreachable),
            at(
                "b",
                FlowProblem::NotAQuestion {
                    question: "bad".into(),
                },
            ),
            at(
                "b",
                FlowProblem::UnknownAnswer {
                    question: "q".into(),
                    label: "Maybe".into(),
                },
            ),
            at("b", FlowProblem::EmptyField),
            at("b", FlowProblem::Unreachable),
            at("set", FlowProblem::EmptyField),
            at("set", FlowProblem::Unreachable),
            at("end", FlowProblem::DuplicateId),
        ];
        for e in &expected {
            assert!(got.contains(e), "missing {e:?} in {got:#?}");
        }
        assert!(
            got.iter().any(|(b, p)| b.as_deref() == Some("bad")
                && matches!(p, FlowProblem::Template(TemplateError::UnknownVariable { name }) if name == "frist_name")),
            "{got:#?}"
        );
        assert_eq!(got.len(), expected.len() + 1, "{got:#?}");
    }

    #[test]
    fn a_flow_without_a_start_is_refused() {
        let empty = Flow::builder(id(), 1).build();
        assert_eq!(
            problems(&empty, &Limits::new()),
            [(None, FlowProblem::NoStart(None))]
        );
        let elsewhere = Flow::builder(id(), 1).start("nope").end("end").build();
        let got = problems(&elsewhere, &Limits::new());
        assert_eq!(got[0], (None, FlowProblem::NoStart(Some("nope".into()))));
        let message = elsewhere.validate(&Limits::new()).unwrap_err().to_string();
        assert!(message.contains("\"nope\" does not exist"), "{message}");
    }

    #[test]
    fn a_cycle_that_never_waits_is_refused_but_a_loop_through_a_question_is_not() {
        let endless = Flow::builder(id(), 1)
            .send("a", "Hi", "b")
            .branch("b", "a", |b| b.field_set("done", "end"))
            .end("end")
            .build();
        let got = problems(&endless, &Limits::new());
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, FlowProblem::EndlessLoop);
        let asking = Flow::builder(id(), 1)
            .send("a", "Hi", "q")
            .question("q", "Again?", |q| q.option("Yes", "a").option("No", "end"))
            .end("end")
            .build();
        assert!(asking.validate(&Limits::new()).is_ok());
    }

    #[test]
    fn zero_durations_and_labels_that_normalize_to_nothing_are_refused() {
        let flow = Flow::builder(id(), 1)
            .question("q", "Pick", |q| {
                q.option("?!", "w")
                    .option("Yes", "w")
                    .timeout(Duration::ZERO, "w")
            })
            .wait("w", Duration::ZERO, "end")
            .end("end")
            .build();
        assert_eq!(
            problems(&flow, &Limits::new()),
            [
                at("q", FlowProblem::EmptyLabel { index: 0 }),
                at("q", FlowProblem::ZeroDuration),
                at("w", FlowProblem::ZeroDuration),
            ]
        );
    }

    #[test]
    fn limits_follow_the_transports() {
        let caps = Capabilities::text_only().with_choices(2, Some(12));
        let limits = Limits::new().narrowed_to(&caps);
        assert_eq!((limits.max_options, limits.max_label_len), (2, Some(12)));
        let flow = Flow::builder(id(), 1)
            .question("q", "Pick", |q| {
                q.option("a", "e").option("b", "e").option("c", "e")
            })
            .end("e")
            .build();
        assert_eq!(
            problems(&flow, &limits),
            [at("q", FlowProblem::TooManyOptions { count: 3, max: 2 })]
        );
    }
}
