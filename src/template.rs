//! Message templates: per-recipient variables substituted by [minijinja], sandboxed.
//!
//! A [`Template`] is compiled and checked once (a campaign does it before anything is sent):
//! a syntax error comes back with its line and column, and a variable the template could never
//! be given (a typo such as `{{ frist_name }}`) is refused by name. Rendering then fills in one
//! recipient at a time.
//!
//! # Variables
//!
//! | variable | value |
//! |---|---|
//! | `id` | the contact id |
//! | `first_name`, `last_name` | the contact's names |
//! | `name` | first and last name joined by a space, or whichever exists |
//! | `email` | the contact's real e-mail (a technical address from auto-registration is left out) |
//! | `fields.<name>` | a custom field of the contact |
//! | `campaign.<name>` | a field of the campaign (the same for every recipient) |
//!
//! An empty or missing value is *undefined*: `{{ first_name | default("friend") }}` falls
//! back to its default, `{% if first_name %}` is false, and printing it bare (`{{ first_name
//! }}`, or through a filter) fails that recipient's render with [`RenderError::Missing`]
//! instead of sending an empty greeting or template text.
//!
//! # Sandbox
//!
//! Templates cannot read files, include other templates or call host functions; loops and
//! recursion are bounded by a fuel limit ([`MAX_FUEL`]), so a hostile template fails with
//! [`RenderError::Failed`] rather than running away. Output is plain text: nothing is
//! HTML-escaped.
//!
//! ```
//! use serde_json::json;
//! use tidings::{contact::{Contact, ContactId}, template::{CampaignVars, Template}};
//!
//! let template = Template::compile("Hi {{ first_name | default('friend') }}, {{ campaign.title }} is out!")?;
//! let campaign = CampaignVars::from_json(json!({"title": "Lesson 4"}))?;
//!
//! let mut ann = Contact::new(ContactId::new("c1")?);
//! ann.first_name = Some("Ann".into());
//! assert_eq!(template.render(&ann, &campaign)?, "Hi Ann, Lesson 4 is out!");
//!
//! let anonymous = Contact::new(ContactId::new("c2")?);
//! assert_eq!(template.render(&anonymous, &campaign)?, "Hi friend, Lesson 4 is out!");
//!
//! let error = Template::compile("Hi {{ first_name }").unwrap_err();
//! assert!(error.to_string().contains("line 1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{fmt, sync::Arc};

use minijinja::{
    AutoEscape, Environment, UndefinedBehavior, Value,
    value::{Enumerator, Object},
};

use crate::contact::{Contact, TECHNICAL_FIELD};

/// Instructions one render may run before it is stopped.
pub const MAX_FUEL: u64 = 100_000;

/// The root variables a template may use; see the [module docs](self).
pub const VARIABLES: [&str; 7] = [
    "id",
    "first_name",
    "last_name",
    "name",
    "email",
    "fields",
    "campaign",
];

const NAME: &str = "message";

/// Why a template was refused when compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template does not parse.
    #[error("template syntax error at line {line}, column {column}: {detail}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// What is wrong.
        detail: String,
    },
    /// The template uses a variable that is never given (see [`VARIABLES`]).
    #[error("template uses unknown variable {name:?} (known: {})", VARIABLES.join(", "))]
    UnknownVariable {
        /// The variable.
        name: String,
    },
    /// Campaign variables must be a JSON object.
    #[error("campaign variables must be a JSON object")]
    CampaignNotObject,
}

/// Why one recipient's render failed. The campaign records it as that recipient's outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A variable without a default has no value for this recipient.
    #[error("no value for a variable used without a default: {detail}")]
    Missing {
        /// The engine's description (names the expression where it can).
        detail: String,
    },
    /// Rendering failed otherwise (a filter given the wrong type, the fuel limit).
    #[error("template render failed: {detail}")]
    Failed {
        /// The engine's description.
        detail: String,
    },
}

/// Variables of a campaign, shared by every recipient's render (`{{ campaign.title }}`).
#[derive(Clone)]
pub struct CampaignVars(Value);

impl Default for CampaignVars {
    fn default() -> Self {
        CampaignVars::none()
    }
}

impl CampaignVars {
    /// No campaign variables.
    pub fn none() -> Self {
        CampaignVars(Value::from_iter(std::iter::empty::<(String, Value)>()))
    }

    /// Campaign variables from a JSON object.
    pub fn from_json(value: serde_json::Value) -> Result<Self, TemplateError> {
        match value {
            serde_json::Value::Object(_) => Ok(CampaignVars(Value::from_serialize(&value))),
            _ => Err(TemplateError::CampaignNotObject),
        }
    }
}

impl fmt::Debug for CampaignVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CampaignVars").field(&self.0).finish()
    }
}

/// Which root variables a template reads, so a render computes only those.
#[derive(Debug, Clone, Default)]
struct Uses {
    id: bool,
    first_name: bool,
    last_name: bool,
    name: bool,
    email: bool,
    fields: bool,
    /// When the template reads only `fields.x` attributes: those names.
    fields_named: Option<Arc<[(String, Value)]>>,
    campaign: bool,
}

/// A compiled, checked template. Cheap to clone and to share between tasks.
#[derive(Clone)]
pub struct Template {
    env: Arc<Environment<'static>>,
    uses: Uses,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("uses", &self.uses)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Compiles and checks `source`; see the [module docs](self).
    pub fn compile(source: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_fuel(Some(MAX_FUEL));
        env.set_keep_trailing_newline(true);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| syntax_error(&e, source))?;
        let mut uses = Uses::default();
        {
            let template = env
                .get_template(NAME)
                .map_err(|e| syntax_error(&e, source))?;
            let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
            names.sort();
            let mut fields: Option<Vec<String>> = Some(Vec::new());
            for name in names {
                let (root, attribute) = match name.split_once('.') {
                    Some((root, attribute)) => (root, Some(attribute)),
                    None => (name.as_str(), None),
                };
                match root {
                    "id" => uses.id = true,
                    "first_name" => uses.first_name = true,
                    "last_name" => uses.last_name = true,
                    "name" => uses.name = true,
                    "email" => uses.email = true,
                    "fields" => {
                        uses.fields = true;
                        // Only `fields.x` lookups: a render converts just those fields.
                        match (attribute, fields.as_mut()) {
                            (Some(attribute), Some(list)) => {
                                let first = attribute.split('.').next().unwrap_or(attribute);
                                list.push(first.to_owned());
                            }
                            _ => fields = None,
                        }
                    }
                    "campaign" => uses.campaign = true,
                    // Built-in functions such as `range`.
                    global if env.globals().any(|(g, _)| g == global) => {}
                    _ => {
                        return Err(TemplateError::UnknownVariable {
                            name: root.to_owned(),
                        });
                    }
                }
            }
            if let Some(list) = fields.as_mut() {
                list.dedup();
            }
            uses.fields_named = fields.map(|names| {
                // The key as a ready `Value`: a render clones it instead of allocating it.
                names
                    .into_iter()
                    .map(|n| {
                        let key = Value::from(n.as_str());
                        (n, key)
                    })
                    .collect()
            });
        }
        Ok(Template {
            env: Arc::new(env),
            uses,
        })
    }

    /// Renders the template for `contact` with the campaign's variables.
    pub fn render(
        &self,
        contact: &Contact,
        campaign: &CampaignVars,
    ) -> Result<String, RenderError> {
        let vars = Vars::new(&self.uses, contact, campaign);
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| RenderError::Failed {
                detail: e.to_string(),
            })?;
        template
            .render(Value::from_object(vars))
            .map_err(render_error)
    }
}

fn syntax_error(error: &minijinja::Error, source: &str) -> TemplateError {
    let line = error.line().unwrap_or(1);
    let column = error
        .range()
        .and_then(|range| {
            let before = source.get(..range.start)?;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            Some(before[line_start..].chars().count() + 1)
        })
        .unwrap_or(1);
    TemplateError::Syntax {
        line,
        column,
        detail: error.detail().unwrap_or("invalid template").to_owned(),
    }
}

fn render_error(error: minijinja::Error) -> RenderError {
    let detail = match error.detail() {
        Some(d) => format!("{d} (line {})", error.line().unwrap_or(1)),
        None => format!("{} (line {})", error.kind(), error.line().unwrap_or(1)),
    };
    match error.kind() {
        minijinja::ErrorKind::UndefinedError => RenderError::Missing { detail },
        _ => RenderError::Failed { detail },
    }
}

/// The root object of one render: only the variables the template reads, computed up front.
#[derive(Debug)]
struct Vars {
    id: Option<Value>,
    first_name: Option<Value>,
    last_name: Option<Value>,
    name: Option<Value>,
    email: Option<Value>,
    fields: Option<Value>,
    campaign: Option<Value>,
}

fn text(value: &Option<String>) -> Option<Value> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Value::from)
}

impl Vars {
    fn new(uses: &Uses, contact: &Contact, campaign: &CampaignVars) -> Self {
        let full_name = || {
            let first = contact.first_name.as_deref().map(str::trim).unwrap_or("");
            let last = contact.last_name.as_deref().map(str::trim).unwrap_or("");
            let joined = match (first.is_empty(), last.is_empty()) {
                (false, false) => format!("{first} {last}"),
                (false, true) => first.to_owned(),
                (true, false) => last.to_owned(),
                (true, true) => return None,
            };
            Some(Value::from(joined))
        };
        let visible = |(k, v): &(&String, &serde_json::Value)| {
            k.as_str() != TECHNICAL_FIELD
                && !matches!(v, serde_json::Value::Null)
                && v.as_str().is_none_or(|s| !s.trim().is_empty())
        };
        let fields = || match uses.fields_named.as_deref() {
            Some(names) => Value::from_object(NamedFields(
                names
                    .iter()
                    .filter_map(|(name, key)| {
                        let entry = contact.fields.get_key_value(name)?;
                        visible(&entry).then(|| (key.clone(), json_value(entry.1)))
                    })
                    .collect(),
            )),
            None => Value::from_iter(
                contact
                    .fields
                    .iter()
                    .filter(visible)
                    .map(|(k, v)| (k.as_str(), json_value(v))),
            ),
        };
        Vars {
            id: uses.id.then(|| Value::from(contact.id.as_str())),
            first_name: uses.first_name.then(|| text(&contact.first_name)).flatten(),
            last_name: uses.last_name.then(|| text(&contact.last_name)).flatten(),
            name: uses.name.then(full_name).flatten(),
            email: (uses.email && !contact.is_technical())
                .then(|| text(&contact.email))
                .flatten(),
            fields: uses.fields.then(fields),
            campaign: uses.campaign.then(|| campaign.0.clone()),
        }
    }
}

/// The few custom fields a template reads by name (`fields.plan`), without building a map.
#[derive(Debug)]
struct NamedFields(Vec<(Value, Value)>);

impl Object for NamedFields {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.iter().map(|(k, _)| k.clone()).collect())
    }
}

/// Converts a JSON value, scalars directly (the common case) and the rest through serde.
fn json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (None, Some(u), _) => Value::from(u),
            (None, None, Some(f)) => Value::from(f),
            _ => Value::from_serialize(n),
        },
        other => Value::from_serialize(other),
    }
}

impl Object for Vars {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "id" => self.id.clone(),
            "first_name" => self.first_name.clone(),
            "last_name" => self.last_name.clone(),
            "name" => self.name.clone(),
            "email" => self.email.clone(),
            "fields" => self.fields.clone(),
            "campaign" => self.campaign.clone(),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&VARIABLES)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::contact::ContactId;

    fn ann() -> Contact {
        let mut c = Contact::new(ContactId::new("c1").unwrap());
        c.first_name = Some("Ann".into());
        c.last_name = Some("Lee".into());
        c.email = Some("ann@example.org".into());
        c.fields.insert("plan".into(), json!("pro"));
        c.fields.insert("lessons".into(), json!(12));
        c
    }

    fn campaign() -> CampaignVars {
        CampaignVars::from_json(json!({"title": "Lesson 4", "url": "https://school.example/l4"}))
            .unwrap()
    }

    #[test]
    fn every_variable_renders() {
        let t = Template::compile(
            "{{ id }}|{{ first_name }}|{{ last_name }}|{{ name }}|{{ email }}|{{ fields.plan }}|{{ fields.lessons + 1 }}|{{ campaign.title }}",
        )
        .unwrap();
        assert_eq!(
            t.render(&ann(), &campaign()).unwrap(),
            "c1|Ann|Lee|Ann Lee|ann@example.org|pro|13|Lesson 4"
        );
    }

    #[test]
    fn defaults_apply_to_missing_and_empty_values() {
        let t = Template::compile(
            "Hi {{ first_name | default('friend') }} ({{ fields.plan | default('free') }})",
        )
        .unwrap();
        let mut c = Contact::new(ContactId::new("c2").unwrap());
        assert_eq!(t.render(&c, &campaign()).unwrap(), "Hi friend (free)");
        c.first_name = Some("  ".into());
        c.fields.insert("plan".into(), json!(""));
        assert_eq!(t.render(&c, &campaign()).unwrap(), "Hi friend (free)");
    }

    #[test]
    fn a_missing_value_without_default_fails_the_render() {
        let c = Contact::new(ContactId::new("c2").unwrap());
        for source in [
            "Hi {{ first_name }}!",
            "Hi {{ name }}!",
            "Your plan: {{ fields.plan }}",
            "{{ campaign.nope }}",
            "{{ first_name | upper }}",
        ] {
            let t = Template::compile(source).unwrap();
            assert!(
                matches!(t.render(&c, &campaign()), Err(RenderError::Missing { .. })),
                "{source}"
            );
        }
    }

    #[test]
    fn undefined_values_can_be_tested() {
        let t = Template::compile(
            "Hi{% if first_name %} {{ first_name }}{% endif %}!{% if fields.plan is defined %} ({{ fields.plan }}){% endif %}",
        )
        .unwrap();
        let c = Contact::new(ContactId::new("c2").unwrap());
        assert_eq!(t.render(&c, &campaign()).unwrap(), "Hi!");
        assert_eq!(t.render(&ann(), &campaign()).unwrap(), "Hi Ann! (pro)");
    }

    #[test]
    fn a_technical_email_is_never_rendered() {
        let mut c = ann();
        c.email = Some("m-123@users.example".into());
        c.fields.insert(TECHNICAL_FIELD.into(), json!(true));
        let t = Template::compile("{{ email | default('none') }} {{ fields | length }}").unwrap();
        assert_eq!(t.render(&c, &campaign()).unwrap(), "none 2");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = Template::compile("Hello\n  {{ first_name }").unwrap_err();
        let TemplateError::Syntax { line, column, .. } = err.clone() else {
            panic!("{err:?}");
        };
        assert_eq!(line, 2);
        assert!(column >= 3, "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(matches!(
            Template::compile("{% if x %}"),
            Err(TemplateError::Syntax { .. })
        ));
    }

    #[test]
    fn unknown_variables_are_refused_when_compiled() {
        assert_eq!(
            Template::compile("Hi {{ frist_name }}").unwrap_err(),
            TemplateError::UnknownVariable {
                name: "frist_name".into()
            }
        );
        // Names a template declares itself are fine.
        Template::compile("{% set x = 1 %}{{ x }}{% for i in [1] %}{{ i }}{% endfor %}").unwrap();
    }

    #[test]
    fn the_sandbox_stops_runaway_templates() {
        let t = Template::compile("{% for i in range(100000) %}{{ i }}{% endfor %}").unwrap();
        assert!(matches!(
            t.render(&ann(), &campaign()),
            Err(RenderError::Failed { .. })
        ));
        // No other template can be reached: these do not even parse.
        for source in [
            "{% include 'other' %}",
            "{% extends 'base' %}",
            "{% import 'macros' as m %}",
        ] {
            assert!(
                matches!(Template::compile(source), Err(TemplateError::Syntax { .. })),
                "{source}"
            );
        }
    }

    #[test]
    fn output_is_not_escaped() {
        let mut c = ann();
        c.first_name = Some("<Ann & Bob>".into());
        let t = Template::compile("{{ first_name }}").unwrap();
        assert_eq!(t.render(&c, &campaign()).unwrap(), "<Ann & Bob>");
    }

    #[test]
    fn campaign_vars_must_be_an_object() {
        assert!(CampaignVars::from_json(json!([1])).is_err());
        let t = Template::compile("{{ campaign.x | default('-') }}").unwrap();
        assert_eq!(t.render(&ann(), &CampaignVars::none()).unwrap(), "-");
    }
}
