//! Parsing a webhook body straight into [`Inbound`] events.
//!
//! [`Webhook::receive`](super::Webhook::receive) does not build a [`WebhookBody`] first: each
//! event is converted by [`to_inbound`](super::inbound::to_inbound) as soon as it is parsed, so no event is stored twice
//! and no list of entries or events is built only to be walked once. The result is what
//! parsing a [`WebhookBody`] and converting its events in body order gives (a test checks
//! it): the same [`Event`] model and the same conversion are used.
//!
//! The body must be UTF-8 as a whole, as JSON is (RFC 8259; Meta even escapes every
//! non-ASCII character). One pass checks it, and the parser then reads from a `str`, which
//! spares it checking each string it meets: about a tenth of a request's time.
//!
//! An event is converted at once when its entry's Page id is known and so is its time (the
//! entry's `time` stands in for an event without a `timestamp`). Meta sends `id` and `time`
//! first; should an entry ever name them after its events, the events wait in a list until
//! the end of the entry. Either way they come out in body order.
//!
//! Conversion does not need the Page's settings, only its id: events of Pages that are not
//! served are converted all the same and discarded by the caller before anything else sees
//! them, as each entry's span of events is recorded.
//!
//! [`WebhookBody`]: super::event::WebhookBody

use std::{borrow::Cow, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor},
};

use smallvec::SmallVec;

use super::{
    event::{Event, IdValue, Str, TimestampValue},
    inbound::{Converted, Dropped, Page, to_inbound_on},
    tolerant,
};
use crate::{
    clock::Timestamp,
    contact::{AddressScope, Channel},
    inbound::Notice,
    message::Inbound,
};

/// The error that ends the fast path: the body holds something only the tolerant reader
/// keeps (an event that does not fit, an entry of another kind), so it reads the body again.
const FALLBACK: &str = "read again by the tolerant reader";

/// A field name of the body or of an entry; names this module does not read are `""`, so
/// no name is ever copied.
struct Key(&'static str);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                const KNOWN: [&str; 7] = [
                    "object",
                    "entry",
                    "id",
                    "time",
                    "messaging",
                    "standby",
                    "changes",
                ];
                Ok(Key(KNOWN.into_iter().find(|k| *k == v).unwrap_or("")))
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// A parsed and converted body.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    /// The subscribed object (`"page"` for Messenger).
    pub(crate) object: Cow<'a, str>,
    /// The events, in body order.
    pub(crate) events: Vec<Inbound>,
    /// The events that could not be converted, in body order.
    pub(crate) dropped: Vec<Dropped>,
    /// Notices about Pages, in body order.
    pub(crate) notices: Vec<Notice>,
    /// What could not be read and belongs to no Page that could be read (an entry without a
    /// readable id, the entries of another product's object): reported whatever the Pages.
    pub(crate) orphans: Vec<Dropped>,
    /// Which Page each run of events and dropped events belongs to, in body order
    /// (consecutive entries of one Page share a span; a body names one Page nearly always,
    /// whose span stays inline).
    pub(crate) spans: Spans<'a>,
}

/// The spans of a body.
pub(crate) type Spans<'a> = SmallVec<[Span<'a>; 1]>;

/// A run of consecutive entries of one Page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span<'a> {
    /// The Page id.
    pub(crate) page_id: Cow<'a, str>,
    /// The end (exclusive) of its events in [`Parsed::events`]; it starts where the previous
    /// span ends.
    pub(crate) events_end: usize,
    /// The end (exclusive) of its dropped events in [`Parsed::dropped`].
    pub(crate) dropped_end: usize,
    /// The end (exclusive) of its notices in [`Parsed::notices`].
    pub(crate) notices_end: usize,
}

/// Parses `body` and converts its events, keeping every event that does not fit as a
/// [`Dropped`] with its raw JSON; `now` is the time of events that carry none.
///
/// A body that is not UTF-8 JSON, or not an envelope (an object with a string `object` and,
/// if any, an array `entry`), is an error: nothing of it can be trusted to be read.
///
/// Well-formed bodies, nearly all of them, are read once, straight into events; a body with
/// anything odd in it is read a second time by the [tolerant reader](super::tolerant), which
/// gives every readable event exactly as the first pass would have.
pub(crate) fn parse(body: &[u8], now: Timestamp) -> Result<Parsed<'_>, serde_json::Error> {
    // JSON is UTF-8: one pass over the whole body costs less than checking each string.
    let body = std::str::from_utf8(body).map_err(|e| {
        <serde_json::Error as de::Error>::custom(format_args!(
            "the body is not UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })?;
    match parse_fast(body, now) {
        Ok(parsed) if parsed.object == "page" => Ok(parsed),
        _ => tolerant::parse(body, now),
    }
}

/// The fast path of [`parse`]: fails on anything odd, which [`parse`] then reads again.
pub(crate) fn parse_fast(body: &str, now: Timestamp) -> Result<Parsed<'_>, serde_json::Error> {
    // A Messenger event takes a few hundred bytes of JSON: room for the events of most
    // bodies at once, without reserving much for a body of one large event.
    let expected = (body.len() / 384).clamp(1, 1024);
    let mut sink = Sink {
        now,
        events: Vec::with_capacity(expected),
        notices: Vec::new(),
        spans: Spans::new(),
    };
    let mut de = serde_json::Deserializer::from_str(body);
    let object = BodySeed { sink: &mut sink }.deserialize(&mut de)?;
    de.end()?;
    Ok(Parsed {
        object,
        events: sink.events,
        dropped: Vec::new(),
        notices: sink.notices,
        orphans: Vec::new(),
        spans: sink.spans,
    })
}

/// Where converted events go.
struct Sink<'a> {
    now: Timestamp,
    events: Vec<Inbound>,
    notices: Vec<Notice>,
    spans: Spans<'a>,
}

impl<'a> Sink<'a> {
    /// Converts `event`; `false` when it could not be (the tolerant reader keeps it with its
    /// raw JSON).
    #[must_use]
    fn convert(
        &mut self,
        page: Page<'_>,
        event: Event<'_>,
        standby: bool,
        fallback_at: Timestamp,
    ) -> bool {
        match to_inbound_on(page, event, standby, fallback_at) {
            Converted::Event(inbound) => self.events.push(inbound),
            Converted::Notice(notice) => self.notices.push(notice),
            Converted::Dropped(_) => return false,
        }
        true
    }

    /// Closes an entry of `page_id`: its events are those added since the last span.
    fn close_entry(&mut self, page_id: Cow<'a, str>) {
        let (events_end, notices_end) = (self.events.len(), self.notices.len());
        match self.spans.last_mut() {
            Some(last) if last.page_id == page_id => {
                last.events_end = events_end;
                last.notices_end = notices_end;
            }
            _ => self.spans.push(Span {
                page_id,
                events_end,
                dropped_end: 0,
                notices_end,
            }),
        }
    }
}

/// The body: `{"object": ..., "entry": [...]}`; yields `object`.
struct BodySeed<'s, 'a> {
    sink: &'s mut Sink<'a>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for BodySeed<'_, 'a> {
    type Value = Cow<'a, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for BodySeed<'_, 'a> {
    type Value = Cow<'a, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a webhook body")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object: Option<Cow<'a, str>> = None;
        let mut entries_seen = false;
        while let Some(key) = map.next_key::<Key>()? {
            match key.0 {
                "object" => {
                    if object.is_some() {
                        return Err(de::Error::duplicate_field("object"));
                    }
                    object = Some(map.next_value::<Str<'a>>()?.0);
                }
                "entry" => {
                    if entries_seen {
                        return Err(de::Error::duplicate_field("entry"));
                    }
                    entries_seen = true;
                    map.next_value_seed(EntriesSeed {
                        sink: &mut *self.sink,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        object.ok_or_else(|| de::Error::missing_field("object"))
    }
}

/// `[entry, ...]`.
struct EntriesSeed<'s, 'a> {
    sink: &'s mut Sink<'a>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for EntriesSeed<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for EntriesSeed<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(EntrySeed {
                sink: &mut *self.sink,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One entry: `{"id": ..., "time": ..., "messaging": [...], "standby": [...]}`.
struct EntrySeed<'s, 'a> {
    sink: &'s mut Sink<'a>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for EntrySeed<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

/// What an entry knows so far.
struct EntryState<'a> {
    id: Option<Cow<'a, str>>,
    /// The id as an address scope, checked once for all the events of the entry.
    scope: Option<AddressScope>,
    /// `None` until `time` is read; then the entry's time, if it gave one.
    time: Option<Option<Timestamp>>,
    /// Events met before the id or time they need, in body order; once one waits, all that
    /// follow wait too, so the order holds.
    waiting: Vec<(Event<'a>, bool)>,
}

impl<'de: 'a, 'a> Visitor<'de> for EntrySeed<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a webhook entry")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut state = EntryState {
            id: None,
            scope: None,
            time: None,
            waiting: Vec::new(),
        };
        let (mut messaging_seen, mut standby_seen) = (false, false);
        while let Some(key) = map.next_key::<Key>()? {
            match key.0 {
                "id" => {
                    if state.id.is_some() {
                        return Err(de::Error::duplicate_field("id"));
                    }
                    let id = map.next_value::<IdValue<'a>>()?.0;
                    state.scope = AddressScope::new(Channel::Messenger, &id).ok();
                    state.id = Some(id);
                }
                "time" => {
                    if state.time.is_some() {
                        return Err(de::Error::duplicate_field("time"));
                    }
                    state.time = Some(map.next_value::<TimestampValue>()?.0);
                }
                name @ ("messaging" | "standby") => {
                    let standby = name == "standby";
                    let seen = if standby {
                        &mut standby_seen
                    } else {
                        &mut messaging_seen
                    };
                    if std::mem::replace(seen, true) {
                        return Err(de::Error::duplicate_field(name));
                    }
                    map.next_value_seed(EventsSeed {
                        sink: &mut *self.sink,
                        entry: &mut state,
                        standby,
                    })?;
                }
                // Feed changes are another product's: the tolerant reader reports them.
                "changes" => return Err(de::Error::custom(FALLBACK)),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let id = state.id.ok_or_else(|| de::Error::missing_field("id"))?;
        let fallback_at = state.time.flatten().unwrap_or(self.sink.now);
        let page = Page::new(&id, state.scope.as_ref());
        for (event, standby) in state.waiting {
            if !self.sink.convert(page, event, standby, fallback_at) {
                return Err(de::Error::custom(FALLBACK));
            }
        }
        self.sink.close_entry(id);
        Ok(())
    }
}

/// `[event, ...]` of one entry.
struct EventsSeed<'s, 'e, 'a> {
    sink: &'s mut Sink<'a>,
    entry: &'e mut EntryState<'a>,
    standby: bool,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for EventsSeed<'_, '_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for EventsSeed<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let entry = self.entry;
        while let Some(event) = seq.next_element::<Event<'a>>()? {
            let at_hand = match (&entry.id, entry.time) {
                (Some(id), Some(time)) if entry.waiting.is_empty() => {
                    Some((id, time.unwrap_or(self.sink.now)))
                }
                // No entry time needed when the event carries its own.
                (Some(id), None) if entry.waiting.is_empty() && event.timestamp.is_some() => {
                    Some((id, self.sink.now))
                }
                _ => None,
            };
            match at_hand {
                Some((id, fallback_at)) => {
                    let page = Page::new(id, entry.scope.as_ref());
                    if !self.sink.convert(page, event, self.standby, fallback_at) {
                        return Err(de::Error::custom(FALLBACK));
                    }
                }
                None => entry.waiting.push((event, self.standby)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messenger::{event::WebhookBody, inbound::to_inbound};

    /// The dropped events without their raw JSON (which the model does not keep); each must
    /// have some.
    fn without_raw(dropped: &[Dropped]) -> Vec<Dropped> {
        dropped
            .iter()
            .map(|d| {
                assert!(d.raw.is_some(), "dropped without its raw JSON: {d:?}");
                Dropped::new(d.page_id.clone(), d.kind.clone(), d.reason.clone())
            })
            .collect()
    }

    const NOW: Timestamp = Timestamp::from_millis(77);

    /// What parsing the whole body first and converting its events in body order gives;
    /// `standby_first(i)` says whether entry `i` lists `standby` before `messaging`.
    fn reference(
        body: &str,
        standby_first: impl Fn(usize) -> bool,
    ) -> (Vec<Inbound>, Vec<Dropped>, Vec<(String, usize)>) {
        let parsed: WebhookBody<'_> = serde_json::from_str(body).expect("a valid body");
        let (mut events, mut dropped, mut pages) = (Vec::new(), Vec::new(), Vec::new());
        for (i, entry) in parsed.entry.into_iter().enumerate() {
            let fallback_at = entry.time.unwrap_or(NOW);
            let before = events.len();
            let (first, second, first_standby) = if standby_first(i) {
                (entry.standby, entry.messaging, true)
            } else {
                (entry.messaging, entry.standby, false)
            };
            let lists = first
                .into_iter()
                .map(|e| (e, first_standby))
                .chain(second.into_iter().map(|e| (e, !first_standby)));
            for (event, standby) in lists {
                match to_inbound(&entry.id, event, standby, fallback_at) {
                    Converted::Event(inbound) => events.push(inbound),
                    Converted::Dropped(d) => dropped.push(d),
                    Converted::Notice(_) => {}
                }
            }
            pages.push((entry.id.into_owned(), events.len() - before));
        }
        // Spans join consecutive entries of one Page.
        let mut joined: Vec<(String, usize)> = Vec::new();
        for (page, n) in pages {
            match joined.last_mut() {
                Some((last, count)) if *last == page => *count += n,
                _ => joined.push((page, n)),
            }
        }
        (events, dropped, joined)
    }

    /// The spans of `parsed` as (Page, number of events).
    fn span_sizes(parsed: &Parsed<'_>) -> Vec<(String, usize)> {
        let mut start = 0;
        parsed
            .spans
            .iter()
            .map(|s| {
                let n = s.events_end - start;
                start = s.events_end;
                (s.page_id.to_string(), n)
            })
            .collect()
    }

    fn streamed(body: &str) -> Parsed<'_> {
        parse(body.as_bytes(), NOW).expect("a valid body")
    }

    const TEXT: &str = r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"message":{"mid":"m1","text":"hi"}}"#;
    const UNTIMED: &str =
        r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"delivery":{"mids":["o1"]}}"#;
    const ECHO: &str = r#"{"sender":{"id":"P"},"recipient":{"id":"U"},"timestamp":6,"message":{"mid":"e1","is_echo":true,"text":"agent"}}"#;
    const NOBODY: &str = r#"{"recipient":{"id":"P"},"timestamp":7,"message":{"mid":"m9"}}"#;

    #[test]
    fn converts_like_the_model_whatever_the_order_of_an_entry_s_fields() {
        let bodies = [
            // Meta's order: id, time, events.
            format!(
                r#"{{"object":"page","entry":[{{"id":"P","time":9,"messaging":[{TEXT},{UNTIMED},{NOBODY}]}}]}}"#
            ),
            // Events before the id and the time: they wait for both.
            format!(
                r#"{{"entry":[{{"messaging":[{TEXT},{UNTIMED}],"time":9,"id":"P"}}],"object":"page"}}"#
            ),
            // Time after the events: a timed event goes at once, the untimed one waits, and
            // so does every event after it.
            format!(
                r#"{{"object":"page","entry":[{{"id":"P","messaging":[{TEXT},{UNTIMED},{TEXT}],"time":9}}]}}"#
            ),
            // No time at all: now stands in.
            format!(r#"{{"object":"page","entry":[{{"id":"P","messaging":[{UNTIMED}]}}]}}"#),
            // Standby and messaging in one entry, standby first; unknown fields around.
            format!(
                r#"{{"object":"page","x":[1,{{"a":2}}],"entry":[{{"id":"P","time":9,"changes":[],"standby":[{ECHO}],"messaging":[{TEXT}]}}]}}"#
            ),
            // Several entries and Pages; an empty list; an entry with no events.
            format!(
                r#"{{"object":"page","entry":[{{"id":"P","time":9,"messaging":[{TEXT}]}},{{"id":"P","time":9,"messaging":[{ECHO}]}},{{"id":"Q","time":9,"messaging":[],"standby":[{UNTIMED}]}},{{"id":12345,"time":"9"}}]}}"#
            ),
            r#"{"object":"page"}"#.to_owned(),
            r#"{"object":"instagram","entry":[]}"#.to_owned(),
        ];
        for body in &bodies {
            // In these bodies only one entry may hold both lists.
            let standby_first = |_| {
                body.find("\"standby\"")
                    .is_some_and(|s| body.find("\"messaging\"").is_none_or(|m| s < m))
            };
            let (events, dropped, spans) = reference(body, standby_first);
            let parsed = streamed(body);
            assert_eq!(
                parsed.object,
                serde_json::from_str::<WebhookBody<'_>>(body)
                    .unwrap()
                    .object
            );
            assert_eq!(parsed.events, events, "{body}");
            assert_eq!(without_raw(&parsed.dropped), dropped, "{body}");
            assert_eq!(span_sizes(&parsed), spans, "{body}");
        }
    }

    #[test]
    fn spans_say_which_page_each_event_and_dropped_event_belongs_to() {
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"P","time":9,"messaging":[{TEXT},{NOBODY}]}},{{"id":"Q","time":9,"messaging":[{NOBODY},{UNTIMED},{ECHO}]}},{{"id":"P","time":9,"messaging":[{TEXT}]}}]}}"#
        );
        let parsed = streamed(&body);
        let spans: Vec<(&str, usize, usize)> = parsed
            .spans
            .iter()
            .map(|s| (&*s.page_id, s.events_end, s.dropped_end))
            .collect();
        assert_eq!(spans, [("P", 1, 1), ("Q", 3, 2), ("P", 4, 2)]);
        assert_eq!(parsed.dropped[1].page_id, "Q");
        assert_eq!(parsed.events[1].from.scope(), Some("Q"));
    }

    #[test]
    fn bodies_that_are_not_envelopes_are_refused() {
        let bad = [
            String::new(),
            "[]".to_owned(),
            r#"{"entry":[]}"#.to_owned(),
            r#"{"object":5,"entry":[]}"#.to_owned(),
            r#"{"object":"page","object":"page"}"#.to_owned(),
            r#"{"object":"page","entry":null}"#.to_owned(),
            r#"{"object":"page","entry":{"id":"P"}}"#.to_owned(),
            r#"{"object":"page","entry":[]} trailing"#.to_owned(),
            r#"{"object":"page","entry":[{"id":"P","messaging":[{"sender":"#.to_owned(),
        ];
        for body in &bad {
            assert!(parse(body.as_bytes(), NOW).is_err(), "{body}");
        }
    }

    #[test]
    fn an_odd_entry_or_event_is_dropped_with_its_raw_json_and_the_rest_goes_on() {
        let odd = [
            // (entry, the kind it is dropped as)
            (r#"{"time":9,"messaging":[]}"#, "entry"),
            (r#"{"id":null}"#, "entry"),
            (r#"{"id":"P","id":"Q"}"#, "entry"),
            (
                &*format!(r#"{{"id":"P","messaging":[{TEXT}],"messaging":[]}}"#),
                "entry",
            ),
            (r#"{"id":"P","messaging":{}}"#, "messaging"),
            (r#"{"id":"P","standby":null}"#, "standby"),
            (r#"{"id":"P","time":"soon"}"#, "entry"),
            (
                r#"{"id":"P","messaging":[{"sender":{"id":"U"},"message":{"text":5}}]}"#,
                "message",
            ),
            (
                r#"{"id":"P","messaging":[{"sender":{"id":"U"},"timestamp":"soon","message":{"mid":"z","text":"a"}}]}"#,
                "message",
            ),
            (
                r#"{"id":"P","time":9,"changes":[{"field":"feed","value":{"item":"comment"}}]}"#,
                "feed",
            ),
            ("7", "entry"),
        ];
        for (entry, kind) in odd {
            let body = format!(
                r#"{{"object":"page","entry":[{{"id":"P","time":9,"messaging":[{TEXT}]}},{entry},{{"id":"P","time":9,"messaging":[{ECHO}]}}]}}"#
            );
            let parsed = parse(body.as_bytes(), NOW).unwrap_or_else(|e| panic!("{body}: {e}"));
            let good = streamed(&format!(
                r#"{{"object":"page","entry":[{{"id":"P","time":9,"messaging":[{TEXT},{ECHO}]}}]}}"#
            ))
            .events;
            assert_eq!(parsed.events, good, "{entry}");
            let all: Vec<&Dropped> = parsed.dropped.iter().chain(&parsed.orphans).collect();
            assert_eq!(all.len(), 1, "{entry}: {all:?}");
            assert_eq!(all[0].kind, kind, "{entry}");
            let raw = all[0].raw.as_deref().expect("raw JSON kept");
            assert!(
                entry.contains(raw) || raw.contains(entry),
                "{raw} is a part of {entry}"
            );
        }
    }

    #[test]
    fn other_objects_are_dropped_entry_by_entry() {
        let body = format!(
            r#"{{"object":"instagram","entry":[{{"id":"I","time":9,"messaging":[{TEXT}]}},{{"id":7}}]}}"#
        );
        let parsed = parse(body.as_bytes(), NOW).unwrap();
        assert!(parsed.events.is_empty());
        let kinds: Vec<(&str, &str)> = parsed
            .orphans
            .iter()
            .map(|d| (d.page_id.as_str(), d.kind.as_str()))
            .collect();
        assert_eq!(kinds, [("I", "instagram"), ("7", "instagram")]);
        assert_eq!(parsed.orphans[1].raw.as_deref(), Some(r#"{"id":7}"#));
    }

    #[test]
    fn page_notices_are_kept_apart_from_events() {
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"P","time":9,"messaging":[{{"recipient":{{"id":"P"}},"timestamp":3,"policy_enforcement":{{"action":"block","reason":"spam"}}}},{TEXT},{{"recipient":{{"id":"P"}},"timestamp":4,"app_roles":{{"123":["primary_receiver"]}}}}]}}]}}"#
        );
        let parsed = streamed(&body);
        assert_eq!(parsed.events.len(), 1);
        let kinds: Vec<&crate::inbound::NoticeKind> =
            parsed.notices.iter().map(|n| &n.kind).collect();
        assert_eq!(
            kinds,
            [
                &crate::inbound::NoticeKind::Blocked {
                    reason: Some("spam".into())
                },
                &crate::inbound::NoticeKind::AppRoles {
                    roles: vec![("123".into(), vec!["primary_receiver".into()])]
                }
            ]
        );
        assert_eq!(parsed.spans[0].notices_end, 2);
    }

    /// Events that are JSON but do not fit: each must be dropped on its own.
    const MALFORMED: [&str; 12] = [
        r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":"soon","message":{"mid":"x1","text":"a"}}"#,
        r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"message":{"mid":"x2","text":5}}"#,
        r#"{"sender":"U","timestamp":5,"message":{"mid":"x3"}}"#,
        "[1,2]",
        r#""an event""#,
        "null",
        r#"{"sender":{"id":"U"},"timestamp":5,"read":{"watermark":"x"}}"#,
        r#"{"sender":{"id":{"nested":1}},"message":{"text":"hi"}}"#,
        r#"{"sender":{"id":"U"},"timestamp":5,"message":{"mid":"x4","attachments":{"a":1}}}"#,
        r#"{"sender":{"id":"U"},"timestamp":5,"reaction":{"action":"react"}}"#,
        r#"{"sender":{"id":"U"},"timestamp":5,"message":{"mid":"x5","quick_reply":{}}}"#,
        r#"{"sender":{"id":"U"},"timestamp":5,"read":{}}"#,
    ];

    proptest::proptest! {
        /// Adding any malformed event anywhere in any batch never changes what the other
        /// events become, and each one added is dropped with its raw JSON.
        #[test]
        fn a_malformed_event_never_changes_what_the_others_become(
            entries in proptest::collection::vec(
                (0..3usize, proptest::collection::vec(0..POOL.len(), 0..4)),
                1..4,
            ),
            inserts in proptest::collection::vec(
                (0..4usize, 0..5usize, 0..MALFORMED.len()),
                1..4,
            ),
        ) {
            let body = |with: bool| {
                let json: Vec<String> = entries
                    .iter()
                    .enumerate()
                    .map(|(e, (page, list))| {
                        let mut items: Vec<&str> = list.iter().map(|&i| POOL[i]).collect();
                        if with {
                            for &(entry, at, bad) in &inserts {
                                if entry % entries.len() == e {
                                    items.insert(at.min(items.len()), MALFORMED[bad]);
                                }
                            }
                        }
                        format!(
                            r#"{{"id":"{}","time":9,"messaging":[{}]}}"#,
                            ["P", "Q", "12"][*page],
                            items.join(",")
                        )
                    })
                    .collect();
                format!(r#"{{"object":"page","entry":[{}]}}"#, json.join(","))
            };
            let (plain, odd) = (body(false), body(true));
            let before = parse(plain.as_bytes(), NOW).unwrap();
            let after = parse(odd.as_bytes(), NOW).unwrap();
            proptest::prop_assert_eq!(&after.events, &before.events);
            proptest::prop_assert_eq!(&after.notices, &before.notices);
            proptest::prop_assert_eq!(after.dropped.len(), before.dropped.len() + inserts.len());
            for d in &after.dropped {
                proptest::prop_assert!(d.raw.is_some());
            }
            proptest::prop_assert_eq!(span_sizes(&after), span_sizes(&before));
        }
    }

    #[test]
    fn non_ascii_text_reads_as_written_and_a_body_that_is_not_utf8_is_refused() {
        let body = r#"{"object":"page","x":"Grüße","entry":[{"id":"P","time":9,"messaging":[{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"message":{"mid":"m1","text":"Grüße 👋 \u00e9\ud83d\ude00"}}]}]}"#;
        let parsed = streamed(body);
        match &parsed.events[0].kind {
            crate::message::InboundKind::Text { text, .. } => assert_eq!(text, "Grüße 👋 é😀"),
            other => panic!("not a text: {other:?}"),
        }
        // An invalid byte anywhere, read or skipped, refuses the whole body.
        for at in [
            body.find("Grüße").unwrap() + 2,
            body.rfind("Grüße").unwrap() + 2,
        ] {
            let mut bad = body.as_bytes().to_vec();
            bad[at] = 0xFF;
            let error = parse(&bad, NOW).expect_err("not UTF-8").to_string();
            assert!(error.contains("not UTF-8"), "{error}");
        }
    }

    const POSTBACK: &str = r#"{"sender":{"id":"V"},"recipient":{"id":"P"},"timestamp":"8","postback":{"title":"Yes","payload":"Y"}}"#;
    const READ: &str = r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"read":{"watermark":3}}"#;
    const FUTURE: &str =
        r#"{"sender":{"id":"W"},"recipient":{"id":"P"},"timestamp":9,"brand_new":{"a":[1]}}"#;
    const POOL: [&str; 7] = [TEXT, UNTIMED, ECHO, NOBODY, POSTBACK, READ, FUTURE];

    /// An entry: its Page, time, lists (of indexes into `POOL`) and the order of its fields.
    type EntryShape = (
        usize,
        Option<u8>,
        Option<Vec<usize>>,
        Option<Vec<usize>>,
        Vec<u8>,
    );

    fn entry_shape() -> impl proptest::strategy::Strategy<Value = EntryShape> {
        use proptest::prelude::*;
        let list = || proptest::option::of(proptest::collection::vec(0..POOL.len(), 0..4));
        (
            0..4usize,
            proptest::option::of(any::<u8>()),
            list(),
            list(),
            Just(vec![0u8, 1, 2, 3, 4]).prop_shuffle(),
        )
    }

    proptest::proptest! {
        #[test]
        fn any_field_order_converts_like_the_model(
            entries in proptest::collection::vec(entry_shape(), 0..5),
            object_last in proptest::bool::ANY,
        ) {
            let mut standby_first = Vec::new();
            let mut json = Vec::new();
            for (page, time, messaging, standby, order) in &entries {
                let list = |l: &Vec<usize>| {
                    l.iter().map(|&i| POOL[i]).collect::<Vec<_>>().join(",")
                };
                let mut fields = Vec::new();
                let mut first = None;
                for field in order {
                    match field {
                        0 => fields.push(format!(r#""id":"{}""#, ["P", "Q", "12", ""][*page])),
                        1 => if let Some(t) = time { fields.push(format!(r#""time":{t}"#)) },
                        2 => if let Some(l) = messaging {
                            first.get_or_insert(false);
                            fields.push(format!(r#""messaging":[{}]"#, list(l)));
                        },
                        3 => if let Some(l) = standby {
                            first.get_or_insert(true);
                            fields.push(format!(r#""standby":[{}]"#, list(l)));
                        },
                        _ => fields.push(r#""extra":[{"x":1}]"#.to_owned()),
                    }
                }
                standby_first.push(first.unwrap_or(false));
                json.push(format!("{{{}}}", fields.join(",")));
            }
            let entry = format!(r#""entry":[{}]"#, json.join(","));
            let body = if object_last {
                format!(r#"{{{entry},"object":"page"}}"#)
            } else {
                format!(r#"{{"object":"page",{entry}}}"#)
            };
            let (events, dropped, spans) = reference(&body, |i| standby_first[i]);
            let parsed = streamed(&body);
            proptest::prop_assert_eq!(&parsed.events, &events);
            proptest::prop_assert_eq!(&without_raw(&parsed.dropped), &dropped);
            proptest::prop_assert_eq!(span_sizes(&parsed), spans);
        }
    }
}
