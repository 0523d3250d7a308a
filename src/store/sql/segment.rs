//! [`Segment`] filters as SQL over `contacts c`, with every value a bound parameter, for
//! SQLite and PostgreSQL alike.
//!
//! Each condition becomes a boolean SQL expression with placeholders (`?` in SQLite, `$n` in
//! PostgreSQL), and the values go in [`Filter::binds`] in placeholder order: nothing from a
//! segment is ever pasted into the SQL text. A custom field's name is a parameter too (a JSON
//! path would have to be built from it): SQLite matches `json_each(c.fields)` rows on the
//! key, PostgreSQL reads `c.fields -> $n` of a `jsonb` column. The translation keeps
//! [`Segment::matches`]'s meaning exactly: numbers compare with numbers, strings with strings
//! (byte order, as Rust compares them: PostgreSQL's text columns use the `C` collation), a
//! value of another type never matches, and `ne` matches a missing field.
//!
//! The tree walk, the built-in columns and tags, addresses and activity are one translation;
//! the dialects differ only in [`Dialect`]'s few methods: placeholders, substring search and
//! how a custom field is read.

use std::time::Duration;

use serde_json::Value;

use crate::{
    clock::Timestamp,
    contact::ContactId,
    error::StoreError,
    segment::{Cursor, FieldCondition, FieldOp, Node, Segment},
};

const CURSOR_PREFIX: &str = "after:";

/// The cursor that resumes after contact `id`.
pub(crate) fn cursor_after(id: &ContactId) -> Cursor {
    Cursor::new(format!("{CURSOR_PREFIX}{id}"))
}

/// The contact id a cursor of this store resumes after.
pub(crate) fn cursor_id(cursor: &Cursor) -> Result<String, StoreError> {
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

/// The SQL dialect a filter is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // each variant is built only with its store's feature
pub(crate) enum Dialect {
    /// SQLite: `?` placeholders, `instr`, `json_each`.
    Sqlite,
    /// PostgreSQL: `$n` placeholders, `strpos`, `jsonb` operators.
    Postgres,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    Real(f64),
}

/// A segment as a SQL condition and its parameters.
#[derive(Debug)]
pub(crate) struct Filter {
    pub(crate) sql: String,
    pub(crate) binds: Vec<Bind>,
    dialect: Dialect,
    /// The number of the first placeholder (PostgreSQL numbers them in the whole statement).
    first: usize,
}

impl Filter {
    /// Adds `value` as the next parameter; its placeholder.
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        match self.dialect {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${}", self.first + self.binds.len() - 1),
        }
    }

    /// Whether text `haystack` contains the parameter `needle`, as a boolean (NULL if
    /// `haystack` is).
    fn contains(&self, haystack: &str, needle: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("instr({haystack}, {needle}) > 0"),
            Dialect::Postgres => format!("strpos({haystack}, {needle}) > 0"),
        }
    }
}

/// Translates `segment` for `dialect`, evaluating `active_within` at `now`; the filter's
/// placeholders start at number `first` (PostgreSQL's `$first`; SQLite's are positional). A
/// node this store does not know (a newer kind of condition) is refused, never widened.
pub(crate) fn translate(
    segment: &Segment,
    now: Timestamp,
    dialect: Dialect,
    first: usize,
) -> Result<Filter, StoreError> {
    let mut filter = Filter {
        sql: String::new(),
        binds: Vec::new(),
        dialect,
        first,
    };
    node(segment, now, &mut filter)?;
    Ok(filter)
}

fn node(segment: &Segment, now: Timestamp, out: &mut Filter) -> Result<(), StoreError> {
    match segment.node() {
        Node::Everyone => out.sql.push_str("TRUE"),
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
            let p = out.bind(Bind::Text(tag.clone()));
            out.sql.push_str(&format!(
                "EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag = {p})"
            ));
        }
        Node::HasAddress(channel) => {
            let p = out.bind(Bind::Text(channel.to_string()));
            out.sql.push_str(&format!(
                "EXISTS (SELECT 1 FROM contact_addresses a \
                 WHERE a.contact_id = c.id AND a.channel = {p})"
            ));
        }
        Node::ActiveWithin { channel, hours } => {
            let since = now.saturating_sub(Duration::from_secs(hours.saturating_mul(3600)));
            let p = out.bind(Bind::Text(channel.to_string()));
            let at = out.bind(Bind::Int(since.as_millis()));
            out.sql.push_str(&format!(
                "EXISTS (SELECT 1 FROM contact_addresses a JOIN last_inbound l \
                 ON l.channel = a.channel AND l.scope = a.scope AND l.address = a.address \
                 WHERE a.contact_id = c.id AND a.channel = {p} AND l.at >= {at})"
            ));
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
    let sql = match (builtin(condition.name()), out.dialect) {
        (Some(column), _) => text_column(column, condition.op(), value, out),
        (None, Dialect::Sqlite) => sqlite_custom(condition.name(), condition.op(), value, out),
        (None, Dialect::Postgres) => postgres_custom(condition.name(), condition.op(), value, out),
    };
    out.sql.push_str(&sql);
}

/// A condition on a text column that may be NULL.
fn text_column(column: &str, op: FieldOp, value: Option<&Value>, out: &mut Filter) -> String {
    let text = match value {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    match (op, text) {
        (FieldOp::Exists, _) => format!("{column} IS NOT NULL"),
        (FieldOp::Eq, Some(s)) => {
            let p = out.bind(Bind::Text(s));
            format!("coalesce({column} = {p}, FALSE)")
        }
        (FieldOp::Ne, Some(s)) => {
            let p = out.bind(Bind::Text(s));
            format!("NOT coalesce({column} = {p}, FALSE)")
        }
        (FieldOp::Contains, Some(s)) => {
            let p = out.bind(Bind::Text(s));
            format!("coalesce({}, FALSE)", out.contains(column, &p))
        }
        (FieldOp::Gt, Some(s)) => {
            let p = out.bind(Bind::Text(s));
            format!("coalesce({column} > {p}, FALSE)")
        }
        (FieldOp::Lt, Some(s)) => {
            let p = out.bind(Bind::Text(s));
            format!("coalesce({column} < {p}, FALSE)")
        }
        // A text field never equals, contains or compares with a number or a boolean.
        (FieldOp::Ne, None) => "TRUE".to_owned(),
        _ => "FALSE".to_owned(),
    }
}

/// Whether the JSON value `alias` (a `json_each` row) equals the scalar `value`, as
/// `Segment::matches` compares: numbers by value, strings and booleans exactly.
fn sqlite_scalar_eq(alias: &str, value: &Value, out: &mut Filter) -> String {
    match value {
        Value::String(s) => {
            let p = out.bind(Bind::Text(s.clone()));
            format!("({alias}.type = 'text' AND {alias}.value = {p})")
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) => {
                let p = out.bind(Bind::Real(f));
                format!("({alias}.type IN ('integer', 'real') AND {alias}.value = {p})")
            }
            None => "FALSE".to_owned(),
        },
        Value::Bool(true) => format!("{alias}.type = 'true'"),
        Value::Bool(false) => format!("{alias}.type = 'false'"),
        _ => "FALSE".to_owned(),
    }
}

/// A condition on a custom field of `c.fields`, in SQLite.
fn sqlite_custom(name: &str, op: FieldOp, value: Option<&Value>, out: &mut Filter) -> String {
    // `EXISTS (the field named ? satisfies ...)`.
    let exists = |out: &mut Filter, condition: &dyn Fn(&mut Filter) -> String| {
        let key = out.bind(Bind::Text(name.to_owned()));
        let inner = condition(out);
        format!("EXISTS (SELECT 1 FROM json_each(c.fields) f WHERE f.key = {key} AND {inner})")
    };
    match (op, value) {
        (FieldOp::Exists, _) => exists(out, &|_| "f.type <> 'null'".to_owned()),
        (FieldOp::Eq, Some(v)) => exists(out, &|out| sqlite_scalar_eq("f", v, out)),
        (FieldOp::Ne, Some(v)) => {
            format!("NOT {}", exists(out, &|out| sqlite_scalar_eq("f", v, out)))
        }
        (FieldOp::Contains, Some(v)) => exists(out, &|out| {
            let in_text = match v {
                Value::String(s) => {
                    let p = out.bind(Bind::Text(s.clone()));
                    format!("(f.type = 'text' AND {})", out.contains("f.value", &p))
                }
                _ => "FALSE".to_owned(),
            };
            let item = sqlite_scalar_eq("i", v, out);
            format!(
                "({in_text} OR (f.type = 'array' AND \
                 EXISTS (SELECT 1 FROM json_each(f.value) i WHERE {item})))"
            )
        }),
        (op @ (FieldOp::Gt | FieldOp::Lt), Some(v)) => {
            let cmp = if op == FieldOp::Gt { '>' } else { '<' };
            match v {
                Value::String(s) => exists(out, &|out| {
                    let p = out.bind(Bind::Text(s.clone()));
                    format!("(f.type = 'text' AND f.value {cmp} {p})")
                }),
                Value::Number(n) => match n.as_f64() {
                    Some(x) => exists(out, &|out| {
                        let p = out.bind(Bind::Real(x));
                        format!("(f.type IN ('integer', 'real') AND f.value {cmp} {p})")
                    }),
                    None => "FALSE".to_owned(),
                },
                _ => "FALSE".to_owned(),
            }
        }
        // The constructors refuse these combinations; refuse them here too rather than match.
        _ => "FALSE".to_owned(),
    }
}

/// Whether the `jsonb` value `json` equals the scalar `value`, as `Segment::matches`
/// compares. Never NULL. A cast is only reached through `CASE` once the type is known, so a
/// value of another type cannot make the statement fail.
fn postgres_scalar_eq(json: &str, value: &Value, out: &mut Filter) -> String {
    match value {
        Value::String(s) => {
            let p = out.bind(Bind::Text(s.clone()));
            format!(
                "coalesce(jsonb_typeof({json}) = 'string' AND ({json} #>> '{{}}') = {p}, FALSE)"
            )
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) => {
                let p = out.bind(Bind::Real(f));
                format!(
                    "coalesce(CASE WHEN jsonb_typeof({json}) = 'number' \
                     THEN ({json} #>> '{{}}')::float8 = {p} END, FALSE)"
                )
            }
            None => "FALSE".to_owned(),
        },
        Value::Bool(b) => format!("coalesce({json} = '{b}'::jsonb, FALSE)"),
        _ => "FALSE".to_owned(),
    }
}

/// A condition on a custom field of `c.fields`, in PostgreSQL (`fields` is `jsonb`).
fn postgres_custom(name: &str, op: FieldOp, value: Option<&Value>, out: &mut Filter) -> String {
    let key = out.bind(Bind::Text(name.to_owned()));
    let f = format!("(c.fields -> {key})");
    match (op, value) {
        (FieldOp::Exists, _) => format!("coalesce(jsonb_typeof({f}) <> 'null', FALSE)"),
        (FieldOp::Eq, Some(v)) => postgres_scalar_eq(&f, v, out),
        (FieldOp::Ne, Some(v)) => format!("NOT {}", postgres_scalar_eq(&f, v, out)),
        (FieldOp::Contains, Some(v)) => {
            let in_text = match v {
                Value::String(s) => {
                    let p = out.bind(Bind::Text(s.clone()));
                    format!(
                        "coalesce(jsonb_typeof({f}) = 'string' AND {}, FALSE)",
                        out.contains(&format!("({f} #>> '{{}}')"), &p)
                    )
                }
                _ => "FALSE".to_owned(),
            };
            let item = postgres_scalar_eq("i.value", v, out);
            format!(
                "({in_text} OR CASE WHEN jsonb_typeof({f}) = 'array' THEN \
                 EXISTS (SELECT 1 FROM jsonb_array_elements({f}) i WHERE {item}) ELSE FALSE END)"
            )
        }
        (op @ (FieldOp::Gt | FieldOp::Lt), Some(v)) => {
            let cmp = if op == FieldOp::Gt { '>' } else { '<' };
            match v {
                Value::String(s) => {
                    let p = out.bind(Bind::Text(s.clone()));
                    format!(
                        "coalesce(jsonb_typeof({f}) = 'string' \
                         AND ({f} #>> '{{}}') COLLATE \"C\" {cmp} {p}, FALSE)"
                    )
                }
                Value::Number(n) => match n.as_f64() {
                    Some(x) => {
                        let p = out.bind(Bind::Real(x));
                        format!(
                            "coalesce(CASE WHEN jsonb_typeof({f}) = 'number' \
                             THEN ({f} #>> '{{}}')::float8 {cmp} {p} END, FALSE)"
                        )
                    }
                    None => "FALSE".to_owned(),
                },
                _ => "FALSE".to_owned(),
            }
        }
        _ => "FALSE".to_owned(),
    }
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
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let filter = translate(&segment, Timestamp::from_secs(0), dialect, 2).unwrap();
            assert!(!filter.sql.contains(hostile), "{}", filter.sql);
            assert_eq!(
                filter
                    .binds
                    .iter()
                    .filter(|b| **b == Bind::Text(hostile.into()))
                    .count(),
                4
            );
            let placeholders = match dialect {
                Dialect::Sqlite => filter.sql.matches('?').count(),
                Dialect::Postgres => (2..2 + filter.binds.len())
                    .filter(|n| filter.sql.contains(&format!("${n}")))
                    .count(),
            };
            assert_eq!(placeholders, filter.binds.len(), "{}", filter.sql);
        }
    }

    #[test]
    fn foreign_cursors_are_refused() {
        assert!(cursor_id(&Cursor::new("after:c7")).is_ok());
        assert!(cursor_id(&Cursor::new("offset:7")).is_err());
        assert!(cursor_id(&Cursor::new("after:")).is_err());
    }
}
