//! [`Segment`] filters as SQL over `contacts c`, with every value a bound parameter.
//!
//! Each condition becomes a boolean SQL expression with `?` placeholders, and the values go
//! in [`Filter::binds`] in placeholder order: nothing from a segment is ever pasted into the
//! SQL text. Custom fields are read with `json_each(c.fields)` matched on the key, so a field
//! name is a parameter too (a JSON path would have to be built from it). The translation keeps
//! [`Segment::matches`]'s meaning exactly: numbers compare with numbers, strings with strings
//! (byte order, as Rust compares them), a value of another type never matches, and `ne`
//! matches a missing field.

use std::time::Duration;

use serde_json::Value;
use sqlx::{Sqlite, query::QueryAs, sqlite::SqliteArguments};

use crate::{
    clock::Timestamp,
    contact::ContactId,
    error::StoreError,
    segment::{Cursor, FieldCondition, FieldOp, Node, Segment},
};

const CURSOR_PREFIX: &str = "after:";

/// The cursor that resumes after contact `id`.
pub(super) fn cursor_after(id: &ContactId) -> Cursor {
    Cursor::new(format!("{CURSOR_PREFIX}{id}"))
}

/// The contact id a cursor of this store resumes after.
pub(super) fn cursor_id(cursor: &Cursor) -> Result<String, StoreError> {
    cursor
        .as_str()
        .strip_prefix(CURSOR_PREFIX)
        .filter(|id| ContactId::new(*id).is_ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            StoreError::invalid(format!(
                "cursor {:?} was not issued by this store",
                cursor.as_str()
            ))
        })
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bind {
    Text(String),
    Int(i64),
    Real(f64),
}

impl Bind {
    /// Binds the value as the query's next parameter.
    pub(super) fn bind_to<'q, O>(
        self,
        query: QueryAs<'q, Sqlite, O, SqliteArguments<'q>>,
    ) -> QueryAs<'q, Sqlite, O, SqliteArguments<'q>> {
        match self {
            Bind::Text(s) => query.bind(s),
            Bind::Int(i) => query.bind(i),
            Bind::Real(r) => query.bind(r),
        }
    }
}

/// A segment as a SQL condition and its parameters.
#[derive(Debug, Default)]
pub(super) struct Filter {
    pub(super) sql: String,
    pub(super) binds: Vec<Bind>,
}

/// Translates `segment`, evaluating `active_within` at `now`. A node this store does not know
/// (a newer kind of condition) is refused, never widened.
pub(super) fn translate(segment: &Segment, now: Timestamp) -> Result<Filter, StoreError> {
    let mut filter = Filter::default();
    node(segment, now, &mut filter)?;
    Ok(filter)
}

fn node(segment: &Segment, now: Timestamp, out: &mut Filter) -> Result<(), StoreError> {
    match segment.node() {
        Node::Everyone => out.sql.push('1'),
        Node::All(items) | Node::Any(items) => {
            let joiner = if matches!(segment.node(), Node::All(_)) {
                " AND "
            } else {
                " OR "
            };
            out.sql.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.sql.push_str(joiner);
                }
                node(item, now, out)?;
            }
            out.sql.push(')');
        }
        Node::Not(inner) => {
            out.sql.push_str("NOT (");
            node(inner, now, out)?;
            out.sql.push(')');
        }
        Node::Tag(tag) => {
            out.sql.push_str(
                "EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag = ?)",
            );
            out.binds.push(Bind::Text(tag.clone()));
        }
        Node::HasAddress(channel) => {
            out.sql.push_str(
                "EXISTS (SELECT 1 FROM contact_addresses a \
                 WHERE a.contact_id = c.id AND a.channel = ?)",
            );
            out.binds.push(Bind::Text(channel.to_string()));
        }
        Node::ActiveWithin { channel, hours } => {
            let since = now.saturating_sub(Duration::from_secs(hours.saturating_mul(3600)));
            out.sql.push_str(
                "EXISTS (SELECT 1 FROM contact_addresses a JOIN last_inbound l \
                 ON l.channel = a.channel AND l.scope = a.scope AND l.address = a.address \
                 WHERE a.contact_id = c.id AND a.channel = ? AND l.at >= ?)",
            );
            out.binds.push(Bind::Text(channel.to_string()));
            out.binds.push(Bind::Int(since.as_millis()));
        }
        // Every kind of condition has a translation; a new kind will not compile until it
        // has one too.
        Node::Field(condition) => field(condition, out),
    }
    Ok(())
}

/// The column of a built-in text field, if `name` is one.
fn builtin(name: &str) -> Option<&'static str> {
    Some(match name {
        "id" => "c.id",
        "email" => "c.email",
        "first_name" => "c.first_name",
        "last_name" => "c.last_name",
        _ => return None,
    })
}

fn field(condition: &FieldCondition, out: &mut Filter) {
    let value = condition.value();
    match builtin(condition.name()) {
        Some(column) => text_column(column, condition.op(), value, out),
        None => custom(condition.name(), condition.op(), value, out),
    }
}

/// A condition on a text column that may be NULL.
fn text_column(column: &str, op: FieldOp, value: Option<&Value>, out: &mut Filter) {
    let text = match value {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let sql = match (op, text) {
        (FieldOp::Exists, _) => format!("{column} IS NOT NULL"),
        (FieldOp::Eq, Some(s)) => {
            out.binds.push(Bind::Text(s));
            format!("coalesce({column} = ?, 0)")
        }
        (FieldOp::Ne, Some(s)) => {
            out.binds.push(Bind::Text(s));
            format!("NOT coalesce({column} = ?, 0)")
        }
        (FieldOp::Contains, Some(s)) => {
            out.binds.push(Bind::Text(s));
            format!("coalesce(instr({column}, ?) > 0, 0)")
        }
        (FieldOp::Gt, Some(s)) => {
            out.binds.push(Bind::Text(s));
            format!("coalesce({column} > ?, 0)")
        }
        (FieldOp::Lt, Some(s)) => {
            out.binds.push(Bind::Text(s));
            format!("coalesce({column} < ?, 0)")
        }
        // A text field never equals, contains or compares with a number or a boolean.
        (FieldOp::Ne, None) => "1".to_owned(),
        _ => "0".to_owned(),
    };
    out.sql.push_str(&sql);
}

/// Whether the JSON value `alias` (a `json_each` row) equals the scalar `value`, as
/// `Segment::matches` compares: numbers by value, strings and booleans exactly.
fn scalar_eq(alias: &str, value: &Value, out: &mut Filter) -> String {
    match value {
        Value::String(s) => {
            out.binds.push(Bind::Text(s.clone()));
            format!("({alias}.type = 'text' AND {alias}.value = ?)")
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) => {
                out.binds.push(Bind::Real(f));
                format!("({alias}.type IN ('integer', 'real') AND {alias}.value = ?)")
            }
            None => "0".to_owned(),
        },
        Value::Bool(true) => format!("{alias}.type = 'true'"),
        Value::Bool(false) => format!("{alias}.type = 'false'"),
        _ => "0".to_owned(),
    }
}

/// A condition on a custom field of `c.fields`.
fn custom(name: &str, op: FieldOp, value: Option<&Value>, out: &mut Filter) {
    // `EXISTS (the field named ? satisfies ...)`.
    let exists = |out: &mut Filter, condition: &dyn Fn(&mut Filter) -> String| {
        out.binds.push(Bind::Text(name.to_owned()));
        let inner = condition(out);
        format!("EXISTS (SELECT 1 FROM json_each(c.fields) f WHERE f.key = ? AND {inner})")
    };
    let sql = match (op, value) {
        (FieldOp::Exists, _) => exists(out, &|_| "f.type <> 'null'".to_owned()),
        (FieldOp::Eq, Some(v)) => exists(out, &|out| scalar_eq("f", v, out)),
        (FieldOp::Ne, Some(v)) => format!("NOT {}", exists(out, &|out| scalar_eq("f", v, out))),
        (FieldOp::Contains, Some(v)) => exists(out, &|out| {
            let in_text = match v {
                Value::String(s) => {
                    out.binds.push(Bind::Text(s.clone()));
                    "(f.type = 'text' AND instr(f.value, ?) > 0)".to_owned()
                }
                _ => "0".to_owned(),
            };
            let item = scalar_eq("i", v, out);
            format!(
                "({in_text} OR (f.type = 'array' AND \
                 EXISTS (SELECT 1 FROM json_each(f.value) i WHERE {item})))"
            )
        }),
        (op @ (FieldOp::Gt | FieldOp::Lt), Some(v)) => {
            let cmp = if op == FieldOp::Gt { '>' } else { '<' };
            match v {
                Value::String(s) => {
                    let s = s.clone();
                    exists(out, &|out| {
                        out.binds.push(Bind::Text(s.clone()));
                        format!("(f.type = 'text' AND f.value {cmp} ?)")
                    })
                }
                Value::Number(n) => match n.as_f64() {
                    Some(x) => exists(out, &|out| {
                        out.binds.push(Bind::Real(x));
                        format!("(f.type IN ('integer', 'real') AND f.value {cmp} ?)")
                    }),
                    None => "0".to_owned(),
                },
                _ => "0".to_owned(),
            }
        }
        // The constructors refuse these combinations; refuse them here too rather than match.
        _ => "0".to_owned(),
    };
    out.sql.push_str(&sql);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_field_names_are_parameters_never_sql() {
        let hostile = "x' OR 1=1 --";
        let segment = Segment::from_json(
            &serde_json::json!({"all": [
                {"field": {"name": hostile, "op": "eq", "value": hostile}},
                {"tag": hostile},
                {"field": {"name": "email", "op": "contains", "value": hostile}},
            ]})
            .to_string(),
        )
        .unwrap();
        let filter = translate(&segment, Timestamp::from_secs(0)).unwrap();
        assert!(!filter.sql.contains(hostile), "{}", filter.sql);
        assert_eq!(
            filter
                .binds
                .iter()
                .filter(|b| **b == Bind::Text(hostile.into()))
                .count(),
            4
        );
        assert_eq!(filter.sql.matches('?').count(), filter.binds.len());
    }

    #[test]
    fn foreign_cursors_are_refused() {
        assert!(cursor_id(&Cursor::new("after:c7")).is_ok());
        assert!(cursor_id(&Cursor::new("offset:7")).is_err());
        assert!(cursor_id(&Cursor::new("after:")).is_err());
    }
}
