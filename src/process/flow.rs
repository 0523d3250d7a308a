//! Flow definitions as data: a [`Flow`] is a list of [`Block`]s with ids and transitions,
//! written in JSON (serde) or with the Rust [`FlowBuilder`].
//!
//! | block | JSON `type` | what it does |
//! |---|---|---|
//! | [`BlockKind::Send`] | `send` | sends a message (a [template](crate::template) with the contact's variables), then goes on |
//! | [`BlockKind::Question`] | `question` | the *callback operation*: asks a question with 1 to 3 answer options, each leading to its block; says what happens on free text and on no answer within a timeout |
//! | [`BlockKind::Wait`] | `wait` | waits for a duration (driven by the engine's `tick`) |
//! | [`BlockKind::Branch`] | `branch` | goes to the first case whose condition holds (a contact field, a previous answer), else `otherwise` |
//! | [`BlockKind::SetField`] | `set_field` | sets a contact field |
//! | [`BlockKind::Handover`] | `handover` | hands the conversation to a human: messages go to the inbox until an agent releases it |
//! | [`BlockKind::End`] | `end` | ends the flow |
//!
//! A definition is only data; it is checked when it is defined
//! ([`FlowRegistry::define`](super::engine::FlowRegistry::define), or [`Flow::validate`]), and a
//! flow that fails the checks can never start.
//!
//! ```
//! use std::time::Duration;
//! use tidings::process::{FlowId, flow::{Flow, FreeText}};
//!
//! let flow = Flow::builder(FlowId::new("check-in")?, 1)
//!     .question("ask", "How is the course going, {{ first_name | default('there') }}?", |q| {
//!         q.option("Great", "thanks")
//!             .option("Too fast", "later")
//!             .on_text(FreeText::Reprompt)
//!             .timeout(Duration::from_secs(86_400), "done")
//!     })
//!     .send("thanks", "Glad to hear it!", "done")
//!     .wait("later", Duration::from_secs(3_600), "done")
//!     .end("done")
//!     .build();
//!
//! let json = serde_json::to_string(&flow)?;
//! assert_eq!(serde_json::from_str::<Flow>(&json)?, flow);
//! assert_eq!(flow.start.as_deref(), Some("ask"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, de};

use super::FlowId;
use crate::{message::ChoiceStyle, transport::Intent};

fn update() -> Intent {
    Intent::Update
}

fn is_update(intent: &Intent) -> bool {
    *intent == Intent::Update
}

/// A flow definition: blocks with ids, and the block it starts at.
///
/// Deserializing refuses keys it does not know, at every level (a typo such as `"timout"`
/// would otherwise be dropped silently and the question would wait forever); the error names
/// the block and the key. [`Flow::from_json`] also says which block, as a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Flow {
    /// The flow's id.
    pub id: FlowId,
    /// Its version. Defining a new version leaves running instances on the version they
    /// started with.
    pub version: u32,
    /// The id of the first block (the builder takes the first block added when none is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Why the flow messages the contact when it does so on its own (after a wait, an answer
    /// timeout, a release), which decides whether a transport may send at all. Messenger
    /// refuses [`Intent::Update`] (the default) more than 24 hours after the contact last
    /// wrote; [`Intent::AccountUpdate`], [`Intent::PostPurchase`] and
    /// [`Intent::ConfirmedEvent`] may go outside that window, for what they are for. A send or
    /// question block may declare its own. Messages that answer the contact (right after an
    /// answer) go as [`Intent::Reply`] whatever the purpose.
    #[serde(default = "update", skip_serializing_if = "is_update")]
    pub purpose: Intent,
    /// The blocks, in any order.
    pub blocks: Vec<Block>,
}

impl Flow {
    /// Starts building version `version` of flow `id`.
    pub fn builder(id: FlowId, version: u32) -> FlowBuilder {
        FlowBuilder {
            flow: Flow {
                id,
                version,
                start: None,
                purpose: Intent::Update,
                blocks: Vec::new(),
            },
        }
    }

    /// The block with id `id`.
    pub fn block(&self, id: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| b.id == id)
    }
}

/// One block of a flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Block {
    /// The block's id, unique within its flow.
    pub id: String,
    /// What it does.
    #[serde(flatten)]
    pub kind: BlockKind,
}

impl<'de> Deserialize<'de> for Block {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `kind` is flattened, and serde cannot refuse unknown keys through a flatten: read
        // the object, take the id, and let `BlockKind` (which refuses them) read the rest.
        let mut object = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let id = match object.remove("id") {
            Some(serde_json::Value::String(id)) => id,
            Some(other) => {
                return Err(de::Error::invalid_type(
                    unexpected(&other),
                    &"a block id (a string)",
                ));
            }
            None => return Err(de::Error::missing_field("id")),
        };
        let kind = BlockKind::deserialize(serde_json::Value::Object(object))
            .map_err(|e| de::Error::custom(format_args!("block {id:?}: {e}")))?;
        Ok(Block { id, kind })
    }
}

fn unexpected(value: &serde_json::Value) -> de::Unexpected<'_> {
    match value {
        serde_json::Value::Null => de::Unexpected::Unit,
        serde_json::Value::Bool(b) => de::Unexpected::Bool(*b),
        serde_json::Value::Number(_) => de::Unexpected::Other("a number"),
        serde_json::Value::String(s) => de::Unexpected::Str(s),
        serde_json::Value::Array(_) => de::Unexpected::Seq,
        serde_json::Value::Object(_) => de::Unexpected::Map,
    }
}

/// A flow's JSON was refused: not JSON, a missing or mistyped field, or a key no block type
/// knows.
#[derive(Debug, thiserror::Error)]
#[error("invalid flow JSON{}", .block.as_ref().map(|b| format!(" in block {b:?}")).unwrap_or_default())]
#[non_exhaustive]
pub struct FlowJsonError {
    /// The block the problem is in, when it is in one.
    pub block: Option<String>,
    /// The parser's error; its message names the key (`unknown field \`timout\``) and
    /// where it is.
    #[source]
    pub source: serde_json::Error,
}

impl Flow {
    /// Reads a flow from JSON, refusing unknown keys; see [`FlowJsonError`].
    ///
    /// ```
    /// use tidings::process::flow::Flow;
    ///
    /// let typo = r#"{"id": "f", "version": 1, "blocks": [
    ///     {"id": "ask", "type": "question", "text": "Ready?",
    ///      "options": [{"label": "Yes", "next": "done"}],
    ///      "timout": {"after_secs": 60, "next": "done"}},
    ///     {"id": "done", "type": "end"}]}"#;
    /// let err = Flow::from_json(typo).unwrap_err();
    /// assert_eq!(err.block.as_deref(), Some("ask"));
    /// assert!(err.source.to_string().contains("unknown field `timout`"));
    /// ```
    pub fn from_json(text: &str) -> Result<Flow, FlowJsonError> {
        serde_json::from_str(text).map_err(|source| {
            let block = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|flow| {
                    let blocks = flow.get("blocks")?.as_array()?;
                    let bad = blocks.iter().find(|b| Block::deserialize(*b).is_err())?;
                    Some(bad.get("id")?.as_str()?.to_owned())
                });
            FlowJsonError { block, source }
        })
    }
}

impl Block {
    /// A block `id` doing `kind`.
    pub fn new(id: impl Into<String>, kind: BlockKind) -> Self {
        Block {
            id: id.into(),
            kind,
        }
    }
}

/// What a block does; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum BlockKind {
    /// Sends `text` (a template) and goes to `next`.
    Send {
        /// The message text, a [template](crate::template).
        text: String,
        /// The block after it.
        next: String,
        /// Why this message is sent when the flow sends it on its own (default: the flow's
        /// [`purpose`](Flow::purpose)).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        purpose: Option<Intent>,
    },
    /// The callback operation: a question and its answers.
    Question(Question),
    /// Waits `secs` seconds, then goes to `next`.
    Wait {
        /// How long to wait, in seconds.
        secs: u64,
        /// The block after it.
        next: String,
    },
    /// Goes to the first case whose condition holds, else to `otherwise`.
    Branch {
        /// The cases, tried in order.
        cases: Vec<Case>,
        /// Where to go when no case holds.
        otherwise: String,
    },
    /// Sets field `field` of the contact to `value`, then goes to `next`.
    SetField {
        /// The field's name.
        field: String,
        /// Its new value.
        value: serde_json::Value,
        /// The block after it.
        next: String,
    },
    /// Hands the conversation to a human; an agent's release goes on to `next`.
    Handover {
        /// A message to the contact first ("a person will answer shortly"), a template.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The block after the release.
        next: String,
    },
    /// Ends the flow.
    End,
}

/// The callback operation: a question with 1 to 3 answer options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Question {
    /// The question, a [template](crate::template).
    pub text: String,
    /// The answer options, in the order shown.
    pub options: Vec<AnswerOption>,
    /// How to show the options (default: the engine's, buttons unless configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<ChoiceStyle>,
    /// What happens when the contact types something that matches no option.
    #[serde(default, skip_serializing_if = "FreeText::is_inbox")]
    pub on_text: FreeText,
    /// What happens when no answer comes in time (default: the question waits forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
    /// Why the question is sent when the flow asks it on its own (default: the flow's
    /// [`purpose`](Flow::purpose)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Intent>,
}

impl Question {
    /// A question with no options yet; free text goes to the inbox, no timeout.
    pub fn new(text: impl Into<String>) -> Self {
        Question {
            text: text.into(),
            options: Vec::new(),
            style: None,
            on_text: FreeText::Inbox,
            timeout: None,
            purpose: None,
        }
    }
}

/// One answer option: its label and the block it leads to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AnswerOption {
    /// What the contact sees (and may type instead of tapping).
    pub label: String,
    /// The block this answer leads to.
    pub next: String,
}

impl AnswerOption {
    /// An option labelled `label` leading to `next`.
    pub fn new(label: impl Into<String>, next: impl Into<String>) -> Self {
        AnswerOption {
            label: label.into(),
            next: next.into(),
        }
    }
}

/// What a question does with typed text that matches none of its options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FreeText {
    /// The text goes to the inbox; the question stays open.
    #[default]
    Inbox,
    /// The question is asked again (with the same buttons: an answer to either copy counts
    /// once); the text is not kept.
    Reprompt,
    /// The text is the answer: it is recorded and the flow goes to this block.
    Goto(String),
}

impl FreeText {
    fn is_inbox(&self) -> bool {
        *self == FreeText::Inbox
    }
}

/// Where a question goes when no answer came within `after_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Timeout {
    /// Seconds from asking.
    pub after_secs: u64,
    /// The block to go to.
    pub next: String,
}

impl Timeout {
    /// A timeout after `after` leading to `next`. Flows count whole seconds: a fraction of a
    /// second is rounded **up** (1.2 s waits 2 s), never dropped; zero is refused when the
    /// flow is checked.
    pub fn new(after: Duration, next: impl Into<String>) -> Self {
        Timeout {
            after_secs: whole_secs(after),
            next: next.into(),
        }
    }
}

/// `d` in whole seconds, a fraction rounded up (so a sub-second duration never becomes 0).
fn whole_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// One case of a branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Case {
    /// The condition.
    pub when: Condition,
    /// Where to go when it holds.
    pub next: String,
}

/// A condition a branch tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Condition {
    /// A contact field (one the flow set first, then the contact's own custom fields).
    Field {
        /// The field's name.
        name: String,
        /// The value it must equal; when absent, the field only has to be set (not null).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        equals: Option<serde_json::Value>,
    },
    /// The option chosen at a question of this flow (its latest answer).
    Answer {
        /// The question block's id.
        question: String,
        /// The option's label.
        label: String,
    },
}

/// Builds a [`Flow`]; blocks are added in order, the first one is the start unless
/// [`start`](FlowBuilder::start) names another. Checking happens when the flow is defined.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct FlowBuilder {
    flow: Flow,
}

impl FlowBuilder {
    /// Names the first block.
    pub fn start(mut self, id: impl Into<String>) -> Self {
        self.flow.start = Some(id.into());
        self
    }

    /// Sets the flow's [`purpose`](Flow::purpose) (default [`Intent::Update`]).
    pub fn purpose(mut self, purpose: Intent) -> Self {
        self.flow.purpose = purpose;
        self
    }

    /// Adds a block.
    pub fn block(mut self, block: Block) -> Self {
        if self.flow.start.is_none() {
            self.flow.start = Some(block.id.clone());
        }
        self.flow.blocks.push(block);
        self
    }

    /// Adds a [`BlockKind::Send`] block.
    pub fn send(
        self,
        id: impl Into<String>,
        text: impl Into<String>,
        next: impl Into<String>,
    ) -> Self {
        self.send_block(id, text, None, next)
    }

    /// Adds a [`BlockKind::Send`] block with its own purpose (see [`Flow::purpose`]).
    pub fn send_as(
        self,
        id: impl Into<String>,
        text: impl Into<String>,
        purpose: Intent,
        next: impl Into<String>,
    ) -> Self {
        self.send_block(id, text, Some(purpose), next)
    }

    fn send_block(
        self,
        id: impl Into<String>,
        text: impl Into<String>,
        purpose: Option<Intent>,
        next: impl Into<String>,
    ) -> Self {
        self.block(Block::new(
            id,
            BlockKind::Send {
                text: text.into(),
                next: next.into(),
                purpose,
            },
        ))
    }

    /// Adds a [`BlockKind::Question`] block, filled in by `build`.
    pub fn question(
        self,
        id: impl Into<String>,
        text: impl Into<String>,
        build: impl FnOnce(QuestionBuilder) -> QuestionBuilder,
    ) -> Self {
        let question = build(QuestionBuilder(Question::new(text))).0;
        self.block(Block::new(id, BlockKind::Question(question)))
    }

    /// Adds a [`BlockKind::Wait`] block. Flows count whole seconds: a fraction of a second
    /// is rounded up, never dropped; a zero wait is refused when the flow is checked.
    pub fn wait(self, id: impl Into<String>, duration: Duration, next: impl Into<String>) -> Self {
        self.block(Block::new(
            id,
            BlockKind::Wait {
                secs: whole_secs(duration),
                next: next.into(),
            },
        ))
    }

    /// Adds a [`BlockKind::Branch`] block, filled in by `build`.
    pub fn branch(
        self,
        id: impl Into<String>,
        otherwise: impl Into<String>,
        build: impl FnOnce(BranchBuilder) -> BranchBuilder,
    ) -> Self {
        let cases = build(BranchBuilder(Vec::new())).0;
        self.block(Block::new(
            id,
            BlockKind::Branch {
                cases,
                otherwise: otherwise.into(),
            },
        ))
    }

    /// Adds a [`BlockKind::SetField`] block.
    pub fn set_field(
        self,
        id: impl Into<String>,
        field: impl Into<String>,
        value: impl Into<serde_json::Value>,
        next: impl Into<String>,
    ) -> Self {
        self.block(Block::new(
            id,
            BlockKind::SetField {
                field: field.into(),
                value: value.into(),
                next: next.into(),
            },
        ))
    }

    /// Adds a [`BlockKind::Handover`] block, with an optional message to the contact.
    pub fn handover(
        self,
        id: impl Into<String>,
        text: Option<&str>,
        next: impl Into<String>,
    ) -> Self {
        self.block(Block::new(
            id,
            BlockKind::Handover {
                text: text.map(str::to_owned),
                next: next.into(),
            },
        ))
    }

    /// Adds a [`BlockKind::End`] block.
    pub fn end(self, id: impl Into<String>) -> Self {
        self.block(Block::new(id, BlockKind::End))
    }

    /// The flow (unchecked: it is checked when defined).
    pub fn build(self) -> Flow {
        self.flow
    }
}

/// Fills in a [`Question`] for [`FlowBuilder::question`].
#[derive(Debug, Clone)]
#[must_use = "the question is only used once returned to FlowBuilder::question"]
pub struct QuestionBuilder(Question);

impl QuestionBuilder {
    /// Adds an answer option labelled `label` leading to block `next`.
    pub fn option(mut self, label: impl Into<String>, next: impl Into<String>) -> Self {
        self.0.options.push(AnswerOption::new(label, next));
        self
    }

    /// Sets how the options are shown.
    pub fn style(mut self, style: ChoiceStyle) -> Self {
        self.0.style = Some(style);
        self
    }

    /// Sets why the question is sent when the flow asks it on its own (see [`Flow::purpose`]).
    pub fn purpose(mut self, purpose: Intent) -> Self {
        self.0.purpose = Some(purpose);
        self
    }

    /// Sets what happens on typed text that matches no option.
    pub fn on_text(mut self, on_text: FreeText) -> Self {
        self.0.on_text = on_text;
        self
    }

    /// Goes to `next` when no answer came within `after` (whole seconds, a fraction rounded
    /// up; see [`Timeout::new`]).
    pub fn timeout(mut self, after: Duration, next: impl Into<String>) -> Self {
        self.0.timeout = Some(Timeout::new(after, next));
        self
    }
}

/// Fills in the cases of a branch for [`FlowBuilder::branch`].
#[derive(Debug, Clone)]
#[must_use = "the cases are only used once returned to FlowBuilder::branch"]
pub struct BranchBuilder(Vec<Case>);

impl BranchBuilder {
    /// Goes to `next` when field `name` equals `value`.
    pub fn field_equals(
        mut self,
        name: impl Into<String>,
        value: impl Into<serde_json::Value>,
        next: impl Into<String>,
    ) -> Self {
        self.0.push(Case {
            when: Condition::Field {
                name: name.into(),
                equals: Some(value.into()),
            },
            next: next.into(),
        });
        self
    }

    /// Goes to `next` when field `name` is set.
    pub fn field_set(mut self, name: impl Into<String>, next: impl Into<String>) -> Self {
        self.0.push(Case {
            when: Condition::Field {
                name: name.into(),
                equals: None,
            },
            next: next.into(),
        });
        self
    }

    /// Goes to `next` when the latest answer to `question` was the option labelled `label`.
    pub fn answered(
        mut self,
        question: impl Into<String>,
        label: impl Into<String>,
        next: impl Into<String>,
    ) -> Self {
        self.0.push(Case {
            when: Condition::Answer {
                question: question.into(),
                label: label.into(),
            },
            next: next.into(),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_form_is_readable_and_round_trips() {
        let json = json!({
            "id": "survey",
            "version": 2,
            "start": "ask",
            "blocks": [
                {"id": "ask", "type": "question", "text": "Ready?",
                 "options": [{"label": "Yes", "next": "yes"}, {"label": "No", "next": "done"}],
                 "on_text": {"goto": "done"},
                 "timeout": {"after_secs": 60, "next": "done"},
                 "style": "quick_replies"},
                {"id": "yes", "type": "set_field", "field": "ready", "value": true, "next": "check"},
                {"id": "check", "type": "branch",
                 "cases": [{"when": {"field": {"name": "plan", "equals": "pro"}}, "next": "human"},
                           {"when": {"answer": {"question": "ask", "label": "Yes"}}, "next": "pause"}],
                 "otherwise": "done"},
                {"id": "pause", "type": "wait", "secs": 5, "next": "done"},
                {"id": "human", "type": "handover", "text": "An agent will answer.", "next": "done"},
                {"id": "done", "type": "end"}
            ]
        });
        let flow: Flow = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(flow.blocks.len(), 6);
        assert!(matches!(
            &flow.block("ask").unwrap().kind,
            BlockKind::Question(q) if q.on_text == FreeText::Goto("done".into())
                && q.style == Some(ChoiceStyle::QuickReplies)
        ));
        assert_eq!(serde_json::to_value(&flow).unwrap(), json);
    }

    #[test]
    fn unknown_keys_are_refused_naming_the_block_and_the_key() {
        let flow = |ask: serde_json::Value| {
            json!({"id": "f", "version": 1, "blocks": [ask, {"id": "done", "type": "end"}]})
                .to_string()
        };
        let cases = [
            (
                json!({"id": "ask", "type": "question", "text": "Ready?",
                       "options": [{"label": "Yes", "next": "done"}],
                       "timout": {"after_secs": 60, "next": "done"}}),
                "timout",
            ),
            (
                json!({"id": "ask", "type": "question", "text": "Ready?",
                       "options": [{"label": "Yes", "next": "done", "nxt": "x"}]}),
                "nxt",
            ),
            (
                json!({"id": "ask", "type": "question", "text": "Ready?",
                       "options": [{"label": "Yes", "next": "done"}],
                       "timeout": {"after": 60, "next": "done"}}),
                "after",
            ),
            (
                json!({"id": "ask", "type": "send", "text": "Hi", "next": "done", "txt": "x"}),
                "txt",
            ),
            (
                json!({"id": "ask", "type": "wait", "sec": 5, "next": "done"}),
                "sec",
            ),
            (
                json!({"id": "ask", "type": "branch", "otherwise": "done",
                       "cases": [{"when": {"field": {"name": "plan", "equal": 1}}, "next": "done"}]}),
                "equal",
            ),
        ];
        for (ask, key) in cases {
            let err = Flow::from_json(&flow(ask)).unwrap_err();
            assert_eq!(err.block.as_deref(), Some("ask"), "{key}: {err:?}");
            let message = err.source.to_string();
            assert!(
                message.contains(&format!("unknown field `{key}`")),
                "{message}"
            );
            assert!(message.contains("block \"ask\""), "{message}");
        }
        let top = json!({"id": "f", "version": 1, "blocks": [], "strat": "a"}).to_string();
        let err = Flow::from_json(&top).unwrap_err();
        assert_eq!(err.block, None);
        assert!(err.source.to_string().contains("unknown field `strat`"));
        assert!(Flow::from_json(&flow(json!({"id": "ask", "type": "end"}))).is_ok());
    }

    #[test]
    fn sub_second_durations_round_up_to_whole_seconds() {
        let flow = Flow::builder(FlowId::new("f").unwrap(), 1)
            .question("q", "Ready?", |q| {
                q.option("Yes", "w")
                    .timeout(Duration::from_millis(1_200), "w")
            })
            .wait("w", Duration::from_millis(1), "end")
            .end("end")
            .build();
        assert!(matches!(
            &flow.block("q").unwrap().kind,
            BlockKind::Question(q) if q.timeout.as_ref().map(|t| t.after_secs) == Some(2)
        ));
        assert!(matches!(
            flow.block("w").unwrap().kind,
            BlockKind::Wait { secs: 1, .. }
        ));
    }

    #[test]
    fn the_builder_starts_at_the_first_block_unless_told() {
        let id = FlowId::new("f").unwrap();
        let flow = Flow::builder(id.clone(), 1).end("a").end("b").build();
        assert_eq!(flow.start.as_deref(), Some("a"));
        let flow = Flow::builder(id, 1).start("b").end("a").end("b").build();
        assert_eq!(flow.start.as_deref(), Some("b"));
    }
}
