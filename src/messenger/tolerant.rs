//! The tolerant reader: a webhook body in which some part does not fit, read so that the
//! rest is not lost.
//!
//! Meta redelivers a batch it got no 200 for, for up to 36 hours, and then drops it: refusing
//! a whole signed body for one odd event would cost every good event beside it. So a body
//! whose envelope is well formed (`object` plus an `entry` array) is read part by part, each
//! entry and each event on its own (as raw JSON first, then as the model), and what cannot be
//! read becomes a [`Dropped`] with its reason and its raw JSON:
//!
//! | what | becomes |
//! |---|---|
//! | an event that does not fit the model (a `timestamp` that is no number, a `text` that is no string, ...) | a `Dropped` of that event |
//! | an event that names no person, or an invalid id | a `Dropped` of that event |
//! | an entry without a readable `id`, with a `time` that is no timestamp, with a field twice | a `Dropped` of the entry |
//! | `messaging` or `standby` that is not a list | a `Dropped` of that list |
//! | an event wrapped as `{"field": "messaging_postbacks", "value": {...}}` (the shape of Meta's newer docs and the App Dashboard's test button), in `messaging` or in `changes` | the event inside, read as any other |
//! | a `changes` entry of another product (Page feed, comments) | a `Dropped` per change |
//! | the entries of another `object` (`instagram`, `whatsapp_business_account`, ...) | a `Dropped` per entry |
//!
//! Each readable event becomes exactly what the fast reader makes of it: the same model and
//! the same conversion are used, in body order.

use std::borrow::Cow;

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, Visitor},
};
use serde_json::value::RawValue;
use smallvec::SmallVec;

use super::{
    event::{Event, IdValue, Str, TimestampValue},
    inbound::{Converted, Dropped, Page, to_inbound_on},
    stream::{Parsed, Span, Spans},
};
use crate::{
    clock::Timestamp,
    contact::{AddressScope, Channel},
};

/// The fields of a JSON object in their order, each value kept as raw JSON.
struct Fields<'a>(SmallVec<[(Cow<'a, str>, &'a RawValue); 8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for FieldsVisitor<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = SmallVec::new();
                while let Some(name) = map.next_key::<Str<'a>>()? {
                    fields.push((name.0, map.next_value::<&'a RawValue>()?));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(FieldsVisitor(std::marker::PhantomData))
    }
}

impl<'a> Fields<'a> {
    /// The value of `name`; an error when it is given twice.
    fn one(&self, name: &str) -> Result<Option<&'a RawValue>, String> {
        let mut found = self.0.iter().filter(|(n, _)| n == name);
        let first = found.next().map(|(_, v)| *v);
        match found.next() {
            Some(_) => Err(format!("field `{name}` is given twice")),
            None => Ok(first),
        }
    }
}

/// Reads `body` (UTF-8 already checked) part by part; see the [module docs](self).
pub(crate) fn parse(body: &str, now: Timestamp) -> Result<Parsed<'_>, serde_json::Error> {
    let bad = |m: String| <serde_json::Error as de::Error>::custom(m);
    let top: Fields<'_> = serde_json::from_str(body)?;
    let object = match top.one("object").map_err(bad)? {
        Some(raw) => {
            serde_json::from_str::<Str<'_>>(raw.get())
                .map_err(|e| bad(format!("`object` is not a string: {e}")))?
                .0
        }
        None => return Err(de::Error::missing_field("object")),
    };
    let entries: Vec<&RawValue> = match top.one("entry").map_err(bad)? {
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|e| bad(format!("`entry` is not a list: {e}")))?,
        None => Vec::new(),
    };
    let mut reader = Reader {
        now,
        parsed: Parsed {
            object,
            events: Vec::new(),
            dropped: Vec::new(),
            notices: Vec::new(),
            orphans: Vec::new(),
            spans: Spans::new(),
        },
    };
    if reader.parsed.object != "page" {
        let reason = format!(
            "object {:?} is not a Messenger Page object",
            reader.parsed.object
        );
        for entry in entries {
            let page_id = serde_json::from_str::<Fields<'_>>(entry.get())
                .ok()
                .and_then(|f| f.one("id").ok().flatten())
                .and_then(|id| serde_json::from_str::<IdValue<'_>>(id.get()).ok())
                .map(|id| id.0.into_owned())
                .unwrap_or_default();
            let kind = reader.parsed.object.clone().into_owned();
            reader
                .parsed
                .orphans
                .push(Dropped::new(page_id, kind, reason.clone()).with_raw(entry.get()));
        }
        return Ok(reader.parsed);
    }
    for entry in entries {
        reader.entry(entry);
    }
    Ok(reader.parsed)
}

struct Reader<'a> {
    now: Timestamp,
    parsed: Parsed<'a>,
}

impl<'a> Reader<'a> {
    /// An entry the reader could not attribute to a Page.
    fn orphan(&mut self, reason: impl Into<String>, raw: &RawValue) {
        self.parsed
            .orphans
            .push(Dropped::new("", "entry", reason).with_raw(raw.get()));
    }

    fn entry(&mut self, raw: &'a RawValue) {
        let fields: Fields<'a> = match serde_json::from_str(raw.get()) {
            Ok(fields) => fields,
            Err(e) => return self.orphan(format!("the entry is not an object: {e}"), raw),
        };
        let id = match fields.one("id") {
            Ok(Some(id)) => match serde_json::from_str::<IdValue<'a>>(id.get()) {
                Ok(id) => id.0,
                Err(e) => return self.orphan(format!("the entry's `id` is unreadable: {e}"), raw),
            },
            Ok(None) => return self.orphan("the entry has no `id`", raw),
            Err(reason) => return self.orphan(reason, raw),
        };
        let scope = AddressScope::new(Channel::Messenger, &id).ok();
        let checked = (|| {
            for name in ["time", "messaging", "standby", "changes"] {
                fields.one(name)?;
            }
            match fields.one("time")? {
                Some(time) => serde_json::from_str::<TimestampValue>(time.get())
                    .map(|t| t.0)
                    .map_err(|e| format!("the entry's `time` is not a timestamp: {e}")),
                None => Ok(None),
            }
        })();
        match checked {
            Ok(time) => {
                let fallback_at = time.unwrap_or(self.now);
                let page = Page::new(&id, scope.as_ref());
                for (name, value) in &fields.0 {
                    match &**name {
                        "messaging" => self.events(page, name, value, false, fallback_at),
                        "standby" => self.events(page, name, value, true, fallback_at),
                        "changes" => self.changes(page, &id, value, fallback_at),
                        _ => {}
                    }
                }
            }
            Err(reason) => self
                .parsed
                .dropped
                .push(Dropped::new(id.as_ref(), "entry", reason).with_raw(raw.get())),
        }
        self.close_entry(id);
    }

    fn events(
        &mut self,
        page: Page<'_>,
        list_name: &str,
        list: &'a RawValue,
        standby: bool,
        fallback_at: Timestamp,
    ) {
        let events: Vec<&'a RawValue> = match serde_json::from_str(list.get()) {
            Ok(events) => events,
            Err(e) => {
                let reason = format!("`{list_name}` is not a list of events: {e}");
                self.parsed
                    .dropped
                    .push(Dropped::new(page.id(), list_name, reason).with_raw(list.get()));
                return;
            }
        };
        for raw in events {
            let (raw, standby) = match enveloped(raw) {
                Some((field, value)) => (value, standby || field == "standby"),
                None => (raw, standby),
            };
            self.event(page, raw, standby, fallback_at);
        }
    }

    fn event(&mut self, page: Page<'_>, raw: &'a RawValue, standby: bool, fallback_at: Timestamp) {
        let converted = match serde_json::from_str::<Event<'a>>(raw.get()) {
            Ok(event) => to_inbound_on(page, event, standby, fallback_at),
            Err(e) => Converted::Dropped(Dropped::new(
                page.id(),
                kind_of(raw),
                format!("the event does not fit: {e}"),
            )),
        };
        match converted {
            Converted::Event(event) => self.parsed.events.push(event),
            Converted::Notice(notice) => self.parsed.notices.push(notice),
            Converted::Dropped(dropped) => {
                self.parsed.dropped.push(dropped.with_raw(raw.get()));
            }
        }
    }

    fn changes(
        &mut self,
        page: Page<'_>,
        page_id: &str,
        list: &'a RawValue,
        fallback_at: Timestamp,
    ) {
        const REASON: &str = "Page feed changes are not Messenger events";
        match serde_json::from_str::<Vec<&'a RawValue>>(list.get()) {
            Ok(changes) => {
                for change in changes {
                    if let Some((field, value)) = enveloped(change) {
                        if is_messaging_field(&field) {
                            self.event(page, value, field == "standby", fallback_at);
                            continue;
                        }
                    }
                    let kind = serde_json::from_str::<Fields<'_>>(change.get())
                        .ok()
                        .and_then(|f| f.one("field").ok().flatten())
                        .and_then(|f| serde_json::from_str::<Str<'_>>(f.get()).ok())
                        .map_or(Cow::Borrowed("changes"), |f| Cow::Owned(f.0.into_owned()));
                    self.parsed
                        .dropped
                        .push(Dropped::new(page_id, kind, REASON).with_raw(change.get()));
                }
            }
            Err(e) => self.parsed.dropped.push(
                Dropped::new(
                    page_id,
                    "changes",
                    format!("{REASON} (and not a list: {e})"),
                )
                .with_raw(list.get()),
            ),
        }
    }

    /// Closes an entry of `page_id`, as the fast reader does.
    fn close_entry(&mut self, page_id: Cow<'a, str>) {
        let p = &mut self.parsed;
        let (events_end, dropped_end, notices_end) =
            (p.events.len(), p.dropped.len(), p.notices.len());
        match p.spans.last_mut() {
            Some(last) if last.page_id == page_id => {
                last.events_end = events_end;
                last.dropped_end = dropped_end;
                last.notices_end = notices_end;
            }
            _ => p.spans.push(Span {
                page_id,
                events_end,
                dropped_end,
                notices_end,
            }),
        }
    }
}

/// The field name and the value of an event wrapped as `{"field": ..., "value": {...}}`, the
/// shape of Meta's newer docs; `None` for any other shape.
fn enveloped<'a>(raw: &'a RawValue) -> Option<(Cow<'a, str>, &'a RawValue)> {
    let fields: Fields<'a> = serde_json::from_str(raw.get()).ok()?;
    if fields.0.len() != 2 {
        return None;
    }
    let field = serde_json::from_str::<Str<'a>>(fields.one("field").ok()??.get()).ok()?;
    let value = fields.one("value").ok()??;
    value.get().starts_with('{').then_some((field.0, value))
}

/// Whether a webhook field of the `page` object carries Messenger events (`messages`,
/// `messaging_postbacks`, `message_reactions`, `standby`, ...), as opposed to the Page feed's.
fn is_messaging_field(field: &str) -> bool {
    field.starts_with("messag") || field == "standby"
}

/// The kind of an event that does not fit the model: its first field that names a kind.
fn kind_of(raw: &RawValue) -> String {
    const NOT_KINDS: [&str; 3] = ["sender", "recipient", "timestamp"];
    serde_json::from_str::<Fields<'_>>(raw.get())
        .ok()
        .and_then(|f| {
            f.0.iter()
                .map(|(n, _)| n.as_ref())
                .find(|n| !NOT_KINDS.contains(n))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "event".to_owned())
}
