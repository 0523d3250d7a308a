//! Who a campaign goes to: the [`Segment`] filter and the [`SegmentQuery`] that resolves it.
//!
//! A segment is a serde-serializable filter over contacts: `all` / `any` / `not` over
//! conditions on contact fields, tags (groups), linked channels, and recent activity ("last
//! inbound message on channel X within N hours"). It is checked when it is built or
//! deserialized (an unknown operator, a value of the wrong type, an empty `all`/`any`, nesting
//! deeper than [`MAX_DEPTH`]), so an invalid segment never reaches a query.
//!
//! [`SegmentQuery`] resolves a segment page by page with an opaque [`Cursor`], so a segment of
//! millions of contacts never sits in memory. `store::memory::MemoryDirectory` evaluates
//! the filter with [`Segment::matches`]; a database implementation translates it into a query.
//!
//! # Fields
//!
//! A field condition names `id`, `email`, `first_name`, `last_name`, or else a custom field of
//! [`Contact::fields`]. Comparisons (`gt`, `lt`) compare numbers with numbers and strings with
//! strings (ISO dates compare correctly as strings); a value of another type never matches.
//!
//! ```
//! use tidings::segment::Segment;
//!
//! let segment = Segment::from_json(r#"{"all":[
//!     {"field":{"name":"plan","op":"eq","value":"pro"}},
//!     {"not":{"tag":"unsubscribed"}},
//!     {"has_address":"messenger"}
//! ]}"#)?;
//! let active = Segment::from_json(r#"{"active_within":{"channel":"messenger","hours":24}}"#)?;
//! assert!(Segment::from_json(r#"{"field":{"name":"plan","op":"like","value":"p%"}}"#).is_err());
//! assert!(Segment::from_json(r#"{"field":{"name":"age","op":"gt","value":[1]}}"#).is_err());
//! # let _ = (segment, active);
//! # Ok::<(), tidings::segment::SegmentError>(())
//! ```

use std::{cmp::Ordering, fmt, str::FromStr, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    clock::Timestamp,
    contact::{Address, Channel, Contact},
    error::StoreError,
};

/// Deepest nesting of `all` / `any` / `not` accepted.
pub const MAX_DEPTH: usize = 32;

/// Longest `active_within` window accepted, in hours (ten years).
pub const MAX_ACTIVE_HOURS: u64 = 24 * 366 * 10;

/// Why a segment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// The JSON is not a segment (syntax, unknown condition kind, missing member).
    #[error("segment is not valid JSON for a segment: {0}")]
    Syntax(String),
    /// A field condition names an operator that does not exist.
    #[error("unknown operator {0:?} (known: eq, ne, contains, gt, lt, exists)")]
    UnknownOperator(String),
    /// A field condition has an empty field name.
    #[error("field condition with an empty field name")]
    EmptyFieldName,
    /// An operator was given a value of a type it cannot use.
    #[error("operator {op} on field {field:?} needs {expected}")]
    WrongValueType {
        /// The field.
        field: String,
        /// The operator.
        op: FieldOp,
        /// What the operator needs.
        expected: &'static str,
    },
    /// `all` or `any` without conditions.
    #[error("`{0}` needs at least one condition")]
    EmptyGroup(&'static str),
    /// `tag` with an empty name.
    #[error("tag condition with an empty tag")]
    EmptyTag,
    /// `active_within` with 0 hours or more than [`MAX_ACTIVE_HOURS`].
    #[error("active_within needs 1 to {MAX_ACTIVE_HOURS} hours, got {0}")]
    InvalidHours(u64),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("segment nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// A comparison in a field condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
#[non_exhaustive]
pub enum FieldOp {
    /// Equal to the value.
    Eq,
    /// Not equal to the value (a missing field is not equal).
    Ne,
    /// A string field contains the value as a substring, or an array field contains it.
    Contains,
    /// Greater than the value.
    Gt,
    /// Less than the value.
    Lt,
    /// The field is present and not null (takes no value).
    Exists,
}

impl FieldOp {
    /// The operator's name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldOp::Eq => "eq",
            FieldOp::Ne => "ne",
            FieldOp::Contains => "contains",
            FieldOp::Gt => "gt",
            FieldOp::Lt => "lt",
            FieldOp::Exists => "exists",
        }
    }
}

impl fmt::Display for FieldOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FieldOp {
    type Err = SegmentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "eq" => FieldOp::Eq,
            "ne" => FieldOp::Ne,
            "contains" => FieldOp::Contains,
            "gt" => FieldOp::Gt,
            "lt" => FieldOp::Lt,
            "exists" => FieldOp::Exists,
            _ => return Err(SegmentError::UnknownOperator(s.to_owned())),
        })
    }
}

impl TryFrom<String> for FieldOp {
    type Error = SegmentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<FieldOp> for &'static str {
    fn from(op: FieldOp) -> Self {
        op.as_str()
    }
}

/// A condition on one field of a contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldCondition {
    name: String,
    op: FieldOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
}

impl FieldCondition {
    /// Checks and builds a condition.
    pub fn new(
        name: impl Into<String>,
        op: FieldOp,
        value: Option<Value>,
    ) -> Result<Self, SegmentError> {
        let name = name.into();
        if name.is_empty() {
            return Err(SegmentError::EmptyFieldName);
        }
        let wrong = |expected| SegmentError::WrongValueType {
            field: name.clone(),
            op,
            expected,
        };
        match (op, &value) {
            (FieldOp::Exists, None) => {}
            (FieldOp::Exists, Some(_)) => return Err(wrong("no value")),
            (FieldOp::Eq | FieldOp::Ne | FieldOp::Contains, Some(v)) if is_scalar(v) => {}
            (FieldOp::Eq | FieldOp::Ne | FieldOp::Contains, _) => {
                return Err(wrong("a string, number or boolean value"));
            }
            (FieldOp::Gt | FieldOp::Lt, Some(Value::Number(_) | Value::String(_))) => {}
            (FieldOp::Gt | FieldOp::Lt, _) => return Err(wrong("a number or string value")),
        }
        Ok(FieldCondition { name, op, value })
    }

    /// The field's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operator.
    pub fn op(&self) -> FieldOp {
        self.op
    }

    /// The value compared against (none for `exists`).
    pub fn value(&self) -> Option<&Value> {
        self.value.as_ref()
    }

    fn matches(&self, contact: &Contact) -> bool {
        let field = field_value(contact, &self.name);
        let Some(expected) = &self.value else {
            return field.is_some_and(|v| !v.is_null());
        };
        match self.op {
            FieldOp::Eq => field.is_some_and(|v| scalar_eq(&v, expected)),
            FieldOp::Ne => !field.is_some_and(|v| scalar_eq(&v, expected)),
            FieldOp::Contains => match (field.as_ref(), expected) {
                (Some(Value::String(s)), Value::String(needle)) => s.contains(needle.as_str()),
                (Some(Value::Array(items)), e) => items.iter().any(|i| scalar_eq(i, e)),
                _ => false,
            },
            FieldOp::Gt => compare(field.as_ref(), expected) == Some(Ordering::Greater),
            FieldOp::Lt => compare(field.as_ref(), expected) == Some(Ordering::Less),
            FieldOp::Exists => field.is_some_and(|v| !v.is_null()),
        }
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(field: Option<&Value>, expected: &Value) -> Option<Ordering> {
    match (field?, expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn field_value(contact: &Contact, name: &str) -> Option<Value> {
    let text = |s: &Option<String>| s.as_ref().map(|s| Value::String(s.clone()));
    match name {
        "id" => Some(Value::String(contact.id.as_str().to_owned())),
        "email" => text(&contact.email),
        "first_name" => text(&contact.first_name),
        "last_name" => text(&contact.last_name),
        _ => contact.fields.get(name).cloned(),
    }
}

/// A filter over contacts; see the [module docs](self).
///
/// Always valid: it can only be built through the checked constructors or by deserializing,
/// so an empty `all` (which would match everyone) or an over-deep tree cannot exist. Database
/// implementations of [`SegmentQuery`] read the tree through [`Segment::node`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "SegmentRepr")]
pub struct Segment(Node);

impl Serialize for Segment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// One node of a [`Segment`] tree, for reading it (building goes through [`Segment`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Node {
    /// Every contact.
    Everyone,
    /// Contacts matching every condition (at least one).
    All(Vec<Segment>),
    /// Contacts matching at least one condition (at least one).
    Any(Vec<Segment>),
    /// Contacts not matching the condition.
    Not(Box<Segment>),
    /// A condition on a field.
    Field(FieldCondition),
    /// Contacts with this tag (or in this group); never empty.
    Tag(String),
    /// Contacts with at least one address linked on this channel.
    HasAddress(Channel),
    /// Contacts whose last inbound message on `channel` is at most `hours` old.
    ActiveWithin {
        /// The channel.
        channel: Channel,
        /// The window, 1 to [`MAX_ACTIVE_HOURS`].
        hours: u64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActiveRepr {
    channel: Channel,
    hours: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum SegmentRepr {
    Everyone,
    All(Vec<SegmentRepr>),
    Any(Vec<SegmentRepr>),
    Not(Box<SegmentRepr>),
    Field(FieldRepr),
    Tag(String),
    HasAddress(Channel),
    ActiveWithin(ActiveRepr),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldRepr {
    name: String,
    op: String,
    #[serde(default)]
    value: Option<Value>,
}

impl TryFrom<SegmentRepr> for Segment {
    type Error = SegmentError;
    fn try_from(r: SegmentRepr) -> Result<Self, Self::Error> {
        let s = convert(r, 0)?;
        Ok(s)
    }
}

fn convert(r: SegmentRepr, depth: usize) -> Result<Segment, SegmentError> {
    if depth > MAX_DEPTH {
        return Err(SegmentError::TooDeep);
    }
    let group = |items: Vec<SegmentRepr>, name| {
        if items.is_empty() {
            return Err(SegmentError::EmptyGroup(name));
        }
        items
            .into_iter()
            .map(|i| convert(i, depth + 1))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Segment(match r {
        SegmentRepr::Everyone => Node::Everyone,
        SegmentRepr::All(items) => Node::All(group(items, "all")?),
        SegmentRepr::Any(items) => Node::Any(group(items, "any")?),
        SegmentRepr::Not(inner) => Node::Not(Box::new(convert(*inner, depth + 1)?)),
        SegmentRepr::Field(f) => Node::Field(FieldCondition::new(f.name, f.op.parse()?, f.value)?),
        SegmentRepr::Tag(t) if t.is_empty() => return Err(SegmentError::EmptyTag),
        SegmentRepr::Tag(t) => Node::Tag(t),
        SegmentRepr::HasAddress(c) => Node::HasAddress(c),
        SegmentRepr::ActiveWithin(a) => Segment::active_within(a.channel, a.hours)?.0,
    }))
}

impl Segment {
    /// Parses and checks a segment from JSON, with a typed error.
    pub fn from_json(json: &str) -> Result<Self, SegmentError> {
        let repr: SegmentRepr =
            serde_json::from_str(json).map_err(|e| SegmentError::Syntax(e.to_string()))?;
        convert(repr, 0)
    }

    /// Every contact.
    pub fn everyone() -> Self {
        Segment(Node::Everyone)
    }

    /// Contacts with an address linked on `channel`.
    pub fn has_address(channel: Channel) -> Self {
        Segment(Node::HasAddress(channel))
    }

    /// Contacts whose last inbound message on `channel` is at most `hours` old when the
    /// segment is evaluated.
    pub fn active_within(channel: Channel, hours: u64) -> Result<Self, SegmentError> {
        if hours == 0 || hours > MAX_ACTIVE_HOURS {
            return Err(SegmentError::InvalidHours(hours));
        }
        Ok(Segment(Node::ActiveWithin { channel, hours }))
    }

    /// The root of the tree.
    pub fn node(&self) -> &Node {
        &self.0
    }

    /// Contacts matching every one of `segments` (at least one).
    pub fn all(segments: Vec<Segment>) -> Result<Self, SegmentError> {
        Segment::group(segments, "all").map(|s| Segment(Node::All(s)))
    }

    /// Contacts matching any of `segments` (at least one).
    pub fn any(segments: Vec<Segment>) -> Result<Self, SegmentError> {
        Segment::group(segments, "any").map(|s| Segment(Node::Any(s)))
    }

    fn group(segments: Vec<Segment>, name: &'static str) -> Result<Vec<Segment>, SegmentError> {
        if segments.is_empty() {
            return Err(SegmentError::EmptyGroup(name));
        }
        if segments.iter().map(Segment::depth).max().unwrap_or(0) >= MAX_DEPTH {
            return Err(SegmentError::TooDeep);
        }
        Ok(segments)
    }

    /// Contacts not matching `segment`.
    pub fn negate(segment: Segment) -> Result<Self, SegmentError> {
        if segment.depth() >= MAX_DEPTH {
            return Err(SegmentError::TooDeep);
        }
        Ok(Segment(Node::Not(Box::new(segment))))
    }

    /// A field condition.
    pub fn field(
        name: impl Into<String>,
        op: FieldOp,
        value: Option<Value>,
    ) -> Result<Self, SegmentError> {
        FieldCondition::new(name, op, value).map(|f| Segment(Node::Field(f)))
    }

    /// Contacts with `tag`.
    pub fn tag(tag: impl Into<String>) -> Result<Self, SegmentError> {
        let tag = tag.into();
        if tag.is_empty() {
            return Err(SegmentError::EmptyTag);
        }
        Ok(Segment(Node::Tag(tag)))
    }

    /// How deeply the segment nests (a single condition is 0).
    pub fn depth(&self) -> usize {
        match &self.0 {
            Node::All(items) | Node::Any(items) => {
                1 + items.iter().map(Segment::depth).max().unwrap_or(0)
            }
            Node::Not(inner) => 1 + inner.depth(),
            _ => 0,
        }
    }

    /// Whether `contact` belongs to the segment, for segments without activity conditions
    /// (check [`reads_activity`](Segment::reads_activity)): here no contact counts as active,
    /// so `active_within` never matches and `not active_within` always does. Use
    /// [`matches_at`](Segment::matches_at) for segments that read activity.
    pub fn matches(&self, contact: &Contact) -> bool {
        self.matches_at(contact, &Activity::none())
    }

    /// Whether `contact` belongs to the segment, reading last-inbound times from `activity`.
    pub fn matches_at(&self, contact: &Contact, activity: &Activity<'_>) -> bool {
        match &self.0 {
            Node::Everyone => true,
            Node::All(items) => items.iter().all(|s| s.matches_at(contact, activity)),
            Node::Any(items) => items.iter().any(|s| s.matches_at(contact, activity)),
            Node::Not(inner) => !inner.matches_at(contact, activity),
            Node::Field(f) => f.matches(contact),
            Node::Tag(t) => contact.tags.contains(t),
            Node::HasAddress(c) => contact.address_on(c).is_some(),
            Node::ActiveWithin { channel, hours } => {
                let Some(last_inbound) = activity.last_inbound else {
                    return false;
                };
                let window = Duration::from_secs(hours.saturating_mul(3600));
                let since = activity.now.saturating_sub(window);
                contact
                    .addresses
                    .iter()
                    .filter(|a| a.channel() == channel)
                    .filter_map(last_inbound)
                    .any(|at| at >= since)
            }
        }
    }

    /// Whether the segment has an `active_within` condition (it then depends on the time
    /// and on the last-inbound record, not only on the contact).
    pub fn reads_activity(&self) -> bool {
        match &self.0 {
            Node::All(items) | Node::Any(items) => items.iter().any(Segment::reads_activity),
            Node::Not(inner) => inner.reads_activity(),
            Node::ActiveWithin { .. } => true,
            _ => false,
        }
    }
}

/// What [`Segment::matches_at`] knows about activity: the time of evaluation and a lookup of
/// each address's last inbound message (a synchronous view of a
/// [`LastInbound`](crate::activity::LastInbound) record).
#[derive(Clone, Copy)]
pub struct Activity<'a> {
    now: Timestamp,
    last_inbound: Option<&'a LastInboundFn<'a>>,
}

/// A synchronous lookup of an address's last inbound time.
pub type LastInboundFn<'a> = dyn Fn(&Address) -> Option<Timestamp> + Sync + 'a;

impl<'a> Activity<'a> {
    /// No activity known: no contact is active.
    pub fn none() -> Self {
        Activity {
            now: Timestamp::from_millis(0),
            last_inbound: None,
        }
    }

    /// Activity at `now`, with `last_inbound` giving each address's last inbound time.
    pub fn new(now: Timestamp, last_inbound: &'a LastInboundFn<'a>) -> Self {
        Activity {
            now,
            last_inbound: Some(last_inbound),
        }
    }
}

impl fmt::Debug for Activity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Activity")
            .field("now", &self.now)
            .field("known", &self.last_inbound.is_some())
            .finish()
    }
}

/// An opaque position in a segment's results, issued by the [`SegmentQuery`] that returned it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps a store's cursor text.
    pub fn new(text: impl Into<String>) -> Self {
        Cursor(text.into())
    }

    /// The cursor text, to persist (a campaign resumes from it).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of a segment's contacts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SegmentPage {
    /// The contacts of this page, in the query's stable order.
    pub contacts: Vec<Contact>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl SegmentPage {
    /// A page; stores use this to build what they return.
    pub fn new(contacts: Vec<Contact>, next: Option<Cursor>) -> Self {
        SegmentPage { contacts, next }
    }
}

/// Resolves segments into contacts, page by page.
///
/// Contract: pages follow a stable order; following `next` from the first page (`after =
/// None`) yields every matching contact exactly once, provided contacts are not added or
/// removed meanwhile; a page holds at most `limit` contacts and only the last page has
/// `next = None`. A cursor the store did not issue, or a `limit` of 0, is refused with
/// [`StoreError::Invalid`], and so is a segment the store cannot evaluate (an `active_within`
/// condition without access to last-inbound times: answering "nobody is active" would make
/// `not active_within` select everyone).
#[async_trait]
pub trait SegmentQuery: Send + Sync {
    /// Up to `limit` contacts of `segment` after `after` (from the start when `None`).
    async fn page(
        &self,
        segment: &Segment,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<SegmentPage, StoreError>;

    /// Whether this store can evaluate `segment` exactly; [`StoreError::Invalid`] naming what
    /// it cannot express otherwise. Campaign runs ask before they claim anyone, so a segment a
    /// store cannot evaluate is refused up front instead of being widened or narrowed. The
    /// default accepts every segment: override it when some cannot be evaluated.
    fn check(&self, segment: &Segment) -> Result<(), StoreError> {
        let _ = segment;
        Ok(())
    }

    /// How many contacts `segment` holds now, or `None` when this store cannot tell without
    /// reading them all. Campaign runs ask it beside the first page, so that their progress
    /// has a total (a percentage, a bar) long before the segment has been read to its end.
    /// It is a snapshot: contacts that join or leave during a run move the final count. The
    /// default answers `None`; the crate's stores count.
    async fn count(&self, segment: &Segment) -> Result<Option<u64>, StoreError> {
        let _ = segment;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::contact::{Address, ContactId};

    fn _object_safe(_: &dyn SegmentQuery) {}

    fn contact() -> Contact {
        let mut c = Contact::new(ContactId::new("c1").unwrap());
        c.email = Some("ann@example.org".into());
        c.first_name = Some("Ann".into());
        c.fields.insert("plan".into(), json!("pro"));
        c.fields.insert("lessons_done".into(), json!(12));
        c.fields.insert("joined".into(), json!("2026-03-01"));
        c.fields.insert("courses".into(), json!(["rust", "go"]));
        c.tags.insert("vip".into());
        c.addresses.push(Address::messenger("p", "u").unwrap());
        c
    }

    fn seg(v: serde_json::Value) -> Segment {
        Segment::from_json(&v.to_string()).unwrap()
    }

    #[test]
    fn conditions_evaluate_against_built_in_and_custom_fields() {
        let c = contact();
        let yes = [
            json!("everyone"),
            json!({"field":{"name":"plan","op":"eq","value":"pro"}}),
            json!({"field":{"name":"plan","op":"ne","value":"free"}}),
            json!({"field":{"name":"missing","op":"ne","value":"x"}}),
            json!({"field":{"name":"email","op":"contains","value":"@example."}}),
            json!({"field":{"name":"courses","op":"contains","value":"go"}}),
            json!({"field":{"name":"lessons_done","op":"gt","value":10}}),
            json!({"field":{"name":"lessons_done","op":"eq","value":12.0}}),
            json!({"field":{"name":"joined","op":"lt","value":"2026-04-01"}}),
            json!({"field":{"name":"first_name","op":"exists"}}),
            json!({"tag":"vip"}),
            json!({"has_address":"messenger"}),
            json!({"all":[{"tag":"vip"},{"not":{"has_address":"email"}}]}),
            json!({"any":[{"tag":"nope"},{"field":{"name":"id","op":"eq","value":"c1"}}]}),
        ];
        for v in yes {
            assert!(seg(v.clone()).matches(&c), "{v} should match");
        }
        let no = [
            json!({"field":{"name":"plan","op":"eq","value":"free"}}),
            json!({"field":{"name":"last_name","op":"exists"}}),
            json!({"field":{"name":"lessons_done","op":"gt","value":"10"}}),
            json!({"field":{"name":"missing","op":"lt","value":5}}),
            json!({"tag":"nope"}),
            json!({"not":"everyone"}),
            json!({"all":[{"tag":"vip"},{"tag":"nope"}]}),
        ];
        for v in no {
            assert!(!seg(v.clone()).matches(&c), "{v} should not match");
        }
    }

    #[test]
    fn invalid_segments_are_refused_with_typed_errors() {
        let cases = [
            (
                json!({"field":{"name":"a","op":"like","value":"x"}}),
                SegmentError::UnknownOperator("like".into()),
            ),
            (
                json!({"field":{"name":"","op":"eq","value":"x"}}),
                SegmentError::EmptyFieldName,
            ),
            (json!({"all":[]}), SegmentError::EmptyGroup("all")),
            (json!({"any":[]}), SegmentError::EmptyGroup("any")),
            (json!({"tag":""}), SegmentError::EmptyTag),
        ];
        for (v, expected) in cases {
            assert_eq!(Segment::from_json(&v.to_string()), Err(expected), "{v}");
        }
        for v in [
            json!({"field":{"name":"a","op":"gt","value":true}}),
            json!({"field":{"name":"a","op":"eq","value":null}}),
            json!({"field":{"name":"a","op":"eq"}}),
            json!({"field":{"name":"a","op":"exists","value":1}}),
            json!({"field":{"name":"a","op":"contains","value":{"x":1}}}),
        ] {
            assert!(
                matches!(
                    Segment::from_json(&v.to_string()),
                    Err(SegmentError::WrongValueType { .. })
                ),
                "{v}"
            );
        }
        for v in [
            json!({"unknown_kind":1}),
            json!({"has_address":"fax"}),
            json!(42),
        ] {
            assert!(
                matches!(
                    Segment::from_json(&v.to_string()),
                    Err(SegmentError::Syntax(_))
                ),
                "{v}"
            );
        }
        // Plain serde runs the same checks.
        assert!(serde_json::from_value::<Segment>(json!({"all":[]})).is_err());
    }

    #[test]
    fn active_within_reads_the_last_inbound_time() {
        let c = contact();
        let now = Timestamp::from_secs(1_000_000);
        let seg = seg(json!({"active_within":{"channel":"messenger","hours":24}}));
        assert!(seg.reads_activity());
        let at = |secs_ago: i64| {
            move |a: &Address| {
                (a.channel() == &Channel::Messenger)
                    .then(|| Timestamp::from_secs(1_000_000 - secs_ago))
            }
        };
        let recent = at(23 * 3600);
        let edge = at(24 * 3600);
        let old = at(24 * 3600 + 1);
        assert!(seg.matches_at(&c, &Activity::new(now, &recent)));
        assert!(seg.matches_at(&c, &Activity::new(now, &edge)));
        assert!(!seg.matches_at(&c, &Activity::new(now, &old)));
        assert!(!seg.matches(&c), "unknown activity never matches");
        let email = Segment::active_within(Channel::Email, 24).unwrap();
        assert!(!email.matches_at(&c, &Activity::new(now, &recent)));
        assert!(
            Segment::negate(seg.clone()).unwrap().reads_activity()
                && !Segment::tag("x").unwrap().reads_activity()
        );
        assert_eq!(
            Segment::from_json(r#"{"active_within":{"channel":"messenger","hours":0}}"#),
            Err(SegmentError::InvalidHours(0))
        );
        assert!(matches!(
            Segment::from_json(r#"{"active_within":{"channel":"messenger","hours":-1}}"#),
            Err(SegmentError::Syntax(_))
        ));
        let json = serde_json::to_string(&seg).unwrap();
        assert_eq!(Segment::from_json(&json).unwrap(), seg);
    }

    #[test]
    fn nesting_is_bounded() {
        let mut v = json!({"tag":"x"});
        for _ in 0..=MAX_DEPTH {
            v = json!({ "not": v });
        }
        assert_eq!(
            Segment::from_json(&v.to_string()),
            Err(SegmentError::TooDeep)
        );
        let mut s = Segment::tag("x").unwrap();
        for _ in 0..MAX_DEPTH {
            s = Segment::negate(s).unwrap();
        }
        assert_eq!(Segment::negate(s), Err(SegmentError::TooDeep));
    }

    #[test]
    fn segments_round_trip_through_json() {
        let s = Segment::all(vec![
            Segment::field("plan", FieldOp::Eq, Some(json!("pro"))).unwrap(),
            Segment::negate(Segment::tag("unsubscribed").unwrap()).unwrap(),
            Segment::has_address(Channel::Messenger),
        ])
        .unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(Segment::from_json(&json).unwrap(), s);
        assert!(json.contains(r#""op":"eq""#), "{json}");
        assert!(matches!(s.node(), Node::All(items) if items.len() == 3));
        assert_eq!(
            serde_json::to_string(&Segment::everyone()).unwrap(),
            "\"everyone\""
        );
    }
}
