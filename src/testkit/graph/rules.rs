//! The body rules the fake enforces, as the real Send and Messenger Profile APIs do.
//!
//! Pure functions from a parsed body to what the request asks for, or the refusal. Lengths are
//! counted in characters (`char`s), not bytes.

use serde_json::{Map, Value};

use super::fault::GraphFault;

/// The most characters in `message.text`.
pub(super) const MAX_TEXT: usize = 2000;
/// The most quick replies on one message.
pub(super) const MAX_QUICK_REPLIES: usize = 13;
/// The most characters in a button or quick-reply title.
pub(super) const MAX_TITLE: usize = 20;
/// The most characters in a postback or quick-reply payload (and in `metadata`).
pub(super) const MAX_PAYLOAD: usize = 1000;
/// The most characters in a button template's text.
pub(super) const MAX_BUTTON_TEXT: usize = 640;
/// The most buttons on a button template or a generic template element.
pub(super) const MAX_BUTTONS: usize = 3;
/// The most elements in a generic template.
pub(super) const MAX_ELEMENTS: usize = 10;
/// The most characters in a generic template element's title and subtitle.
pub(super) const MAX_ELEMENT_TITLE: usize = 80;
/// The most characters in a Messenger Profile greeting.
pub(super) const MAX_GREETING: usize = 160;

const MESSAGING_TYPES: [&str; 3] = ["RESPONSE", "UPDATE", "MESSAGE_TAG"];
const TAGS: [&str; 4] = [
    "CONFIRMED_EVENT_UPDATE",
    "POST_PURCHASE_UPDATE",
    "ACCOUNT_UPDATE",
    "HUMAN_AGENT",
];
/// Tags that stopped working on 4 March 2020 (refused with a message that says so; any other
/// unknown tag is refused too).
const RETIRED_TAGS: [&str; 16] = [
    "BUSINESS_PRODUCTIVITY",
    "COMMUNITY_ALERT",
    "CONFIRMED_EVENT_REMINDER",
    "NON_PROMOTIONAL_SUBSCRIPTION",
    "PAIRING_UPDATE",
    "APPLICATION_UPDATE",
    "PAYMENT_UPDATE",
    "PERSONAL_FINANCE_UPDATE",
    "SHIPPING_UPDATE",
    "RESERVATION_UPDATE",
    "ISSUE_RESOLUTION",
    "APPOINTMENT_UPDATE",
    "GAME_EVENT",
    "TRANSPORTATION_UPDATE",
    "FEATURE_FUNCTIONALITY_UPDATE",
    "TICKET_UPDATE",
];
const SENDER_ACTIONS: [&str; 3] = ["typing_on", "typing_off", "mark_seen"];
const NOTIFICATION_TYPES: [&str; 3] = ["REGULAR", "SILENT_PUSH", "NO_PUSH"];
const ATTACHMENT_TYPES: [&str; 5] = ["image", "audio", "video", "file", "template"];
const QUICK_REPLY_TYPES: [&str; 3] = ["text", "user_phone_number", "user_email"];

/// Whom a send is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Recipient {
    /// A page-scoped id.
    Psid(String),
    /// A checkbox or chat plugin `user_ref`.
    UserRef(String),
}

/// What a valid Send API body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SendRequest {
    pub(super) recipient: Recipient,
    pub(super) messaging_type: Option<String>,
    pub(super) tag: Option<String>,
    /// A `sender_action` rather than a `message`.
    pub(super) is_action: bool,
}

/// The refusal of a body that is not a JSON object.
pub(super) fn malformed() -> GraphFault {
    GraphFault::invalid("Invalid parameter")
}

/// Parses a request body, which must be a JSON object.
pub(super) fn parse_object(body: &[u8]) -> Result<Value, GraphFault> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(malformed()),
    }
}

/// Checks a Send API body.
pub(super) fn check_send(body: &Value) -> Result<SendRequest, GraphFault> {
    let body = body.as_object().ok_or_else(malformed)?;
    let recipient = recipient(body)?;
    let messaging_type = get_str(body, "messaging_type", "messaging_type")?;
    if let Some(kind) = messaging_type {
        one_of(kind, &MESSAGING_TYPES, "messaging_type")?;
    }
    let tag = get_str(body, "tag", "tag")?;
    check_tag(messaging_type, tag)?;
    if let Some(kind) = get_str(body, "notification_type", "notification_type")? {
        one_of(kind, &NOTIFICATION_TYPES, "notification_type")?;
    }
    let action = get_str(body, "sender_action", "sender_action")?;
    let message = get_object(body, "message", "message")?;
    match (message, action) {
        (Some(_), Some(_)) => {
            return Err(GraphFault::invalid(
                "(#100) Only one of message or sender_action may be set",
            ));
        }
        (None, None) => {
            return Err(GraphFault::invalid(
                "(#100) The parameter message or sender_action is required",
            ));
        }
        (Some(message), None) => {
            if messaging_type.is_none() {
                return Err(required("messaging_type"));
            }
            check_message(message)?;
        }
        (None, Some(action)) => one_of(action, &SENDER_ACTIONS, "sender_action")?,
    }
    Ok(SendRequest {
        recipient,
        messaging_type: messaging_type.map(str::to_owned),
        tag: tag.map(str::to_owned),
        is_action: action.is_some(),
    })
}

fn recipient(body: &Map<String, Value>) -> Result<Recipient, GraphFault> {
    let recipient =
        get_object(body, "recipient", "recipient")?.ok_or_else(|| required("recipient"))?;
    if recipient.keys().any(|k| k != "id" && k != "user_ref") {
        return Err(GraphFault::invalid(
            "(#100) param recipient supports only id or user_ref in this fake",
        ));
    }
    let id = id_value(recipient.get("id"), "recipient[id]")?;
    let user_ref = id_value(recipient.get("user_ref"), "recipient[user_ref]")?;
    match (id, user_ref) {
        (Some(id), None) => Ok(Recipient::Psid(id)),
        (None, Some(user_ref)) => Ok(Recipient::UserRef(user_ref)),
        _ => Err(GraphFault::invalid(
            "(#100) param recipient must have exactly one of id or user_ref",
        )),
    }
}

/// An id given as a non-empty string or as a number.
fn id_value(value: Option<&Value>, param: &str) -> Result<Option<String>, GraphFault> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(GraphFault::invalid(format!(
            "(#100) param {param} must be a non-empty string"
        ))),
    }
}

fn check_tag(messaging_type: Option<&str>, tag: Option<&str>) -> Result<(), GraphFault> {
    match (messaging_type, tag) {
        (Some("MESSAGE_TAG"), None) => Err(GraphFault::invalid(
            "(#100) param tag is required when messaging_type is MESSAGE_TAG",
        )),
        (Some("MESSAGE_TAG"), Some(tag)) if TAGS.contains(&tag) => Ok(()),
        (Some("MESSAGE_TAG"), Some(tag)) if RETIRED_TAGS.contains(&tag) => {
            Err(GraphFault::invalid(format!(
                "(#100) The tag {tag} was retired on 4 March 2020; use one of {}",
                TAGS.join(", ")
            )))
        }
        (Some("MESSAGE_TAG"), Some(_)) => Err(GraphFault::invalid(format!(
            "(#100) param tag must be one of {}",
            TAGS.join(", ")
        ))),
        (_, Some(_)) => Err(GraphFault::invalid(
            "(#100) param tag is allowed only with messaging_type MESSAGE_TAG",
        )),
        (_, None) => Ok(()),
    }
}

fn check_message(message: &Map<String, Value>) -> Result<(), GraphFault> {
    let text = get_str(message, "text", "message[text]")?;
    let attachment = get_object(message, "attachment", "message[attachment]")?;
    match (text, attachment) {
        (Some(_), Some(_)) => {
            return Err(GraphFault::invalid(
                "(#100) Only one of message[text] or message[attachment] may be set",
            ));
        }
        (None, None) | (Some(""), None) => {
            return Err(GraphFault::new(
                400,
                100,
                Some(2_018_034),
                "Message cannot be empty",
            ));
        }
        (Some(text), None) => max_chars(text, MAX_TEXT, "message[text]")?,
        (None, Some(attachment)) => check_attachment(attachment)?,
    }
    if let Some(metadata) = get_str(message, "metadata", "message[metadata]")? {
        max_chars(metadata, MAX_PAYLOAD, "message[metadata]")?;
    }
    if let Some(replies) = get_array(message, "quick_replies", "message[quick_replies]")? {
        if replies.len() > MAX_QUICK_REPLIES {
            return Err(GraphFault::invalid(format!(
                "(#100) param message[quick_replies] must have at most {MAX_QUICK_REPLIES} items"
            )));
        }
        for (i, reply) in replies.iter().enumerate() {
            check_quick_reply(reply, i)?;
        }
    }
    Ok(())
}

fn check_quick_reply(reply: &Value, i: usize) -> Result<(), GraphFault> {
    let param = format!("message[quick_replies][{i}]");
    let reply = as_object(reply, &param)?;
    let kind = require_str(reply, "content_type", &format!("{param}[content_type]"))?;
    one_of(kind, &QUICK_REPLY_TYPES, &format!("{param}[content_type]"))?;
    if kind == "text" {
        let title = require_str(reply, "title", &format!("{param}[title]"))?;
        non_empty_max(title, MAX_TITLE, &format!("{param}[title]"))?;
        let payload = require_str(reply, "payload", &format!("{param}[payload]"))?;
        max_chars(payload, MAX_PAYLOAD, &format!("{param}[payload]"))?;
    }
    Ok(())
}

fn check_attachment(attachment: &Map<String, Value>) -> Result<(), GraphFault> {
    let kind = require_str(attachment, "type", "message[attachment][type]")?;
    one_of(kind, &ATTACHMENT_TYPES, "message[attachment][type]")?;
    let payload = get_object(attachment, "payload", "message[attachment][payload]")?
        .ok_or_else(|| required("message[attachment][payload]"))?;
    if kind != "template" {
        return Ok(());
    }
    let param = "message[attachment][payload][template_type]";
    match require_str(payload, "template_type", param)? {
        "button" => check_button_template(payload),
        "generic" => check_generic_template(payload),
        // Other templates (media, receipt, ...) pass unchecked.
        _ => Ok(()),
    }
}

fn check_button_template(payload: &Map<String, Value>) -> Result<(), GraphFault> {
    let param = "message[attachment][payload][text]";
    non_empty_max(require_str(payload, "text", param)?, MAX_BUTTON_TEXT, param)?;
    let param = "message[attachment][payload][buttons]";
    let buttons = get_array(payload, "buttons", param)?.ok_or_else(|| required(param))?;
    check_buttons(buttons, 1, param)
}

fn check_generic_template(payload: &Map<String, Value>) -> Result<(), GraphFault> {
    let param = "message[attachment][payload][elements]";
    let elements = get_array(payload, "elements", param)?.ok_or_else(|| required(param))?;
    if elements.is_empty() || elements.len() > MAX_ELEMENTS {
        return Err(GraphFault::invalid(format!(
            "(#100) param {param} must have 1 to {MAX_ELEMENTS} items"
        )));
    }
    for (i, element) in elements.iter().enumerate() {
        let param = format!("{param}[{i}]");
        let element = as_object(element, &param)?;
        let title = require_str(element, "title", &format!("{param}[title]"))?;
        non_empty_max(title, MAX_ELEMENT_TITLE, &format!("{param}[title]"))?;
        if let Some(subtitle) = get_str(element, "subtitle", &format!("{param}[subtitle]"))? {
            max_chars(subtitle, MAX_ELEMENT_TITLE, &format!("{param}[subtitle]"))?;
        }
        let action = format!("{param}[default_action]");
        if let Some(action_object) = get_object(element, "default_action", &action)? {
            check_url(action_object, &action)?;
        }
        let buttons = format!("{param}[buttons]");
        if let Some(list) = get_array(element, "buttons", &buttons)? {
            check_buttons(list, 0, &buttons)?;
        }
    }
    Ok(())
}

fn check_buttons(buttons: &[Value], min: usize, param: &str) -> Result<(), GraphFault> {
    if buttons.len() < min || buttons.len() > MAX_BUTTONS {
        return Err(GraphFault::invalid(format!(
            "(#100) param {param} must have {min} to {MAX_BUTTONS} items"
        )));
    }
    buttons
        .iter()
        .enumerate()
        .try_for_each(|(i, button)| check_button(button, &format!("{param}[{i}]")))
}

fn check_button(button: &Value, param: &str) -> Result<(), GraphFault> {
    let button = as_object(button, param)?;
    let kind = require_str(button, "type", &format!("{param}[type]"))?;
    let title = || -> Result<(), GraphFault> {
        let param = format!("{param}[title]");
        non_empty_max(require_str(button, "title", &param)?, MAX_TITLE, &param)
    };
    match kind {
        "postback" | "phone_number" => {
            title()?;
            let param = format!("{param}[payload]");
            max_chars(require_str(button, "payload", &param)?, MAX_PAYLOAD, &param)
        }
        "web_url" => {
            title()?;
            check_url(button, param)
        }
        "account_link" => check_url(button, param),
        "account_unlink" | "game_play" => Ok(()),
        _ => Err(GraphFault::invalid(format!(
            "(#100) param {param}[type] must be one of postback, web_url, phone_number, \
             account_link, account_unlink, game_play"
        ))),
    }
}

/// `url` must be an absolute http(s) URL.
fn check_url(object: &Map<String, Value>, param: &str) -> Result<(), GraphFault> {
    let param = format!("{param}[url]");
    let url = require_str(object, "url", &param)?;
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(GraphFault::invalid(format!(
            "(#100) param {param} must be an absolute http(s) URL"
        ))),
    }
}

/// Checks a Messenger Profile body: `get_started.payload` and each greeting's `text`.
pub(super) fn check_profile(body: &Value) -> Result<&Map<String, Value>, GraphFault> {
    let body = body.as_object().ok_or_else(malformed)?;
    if body.is_empty() {
        return Err(GraphFault::invalid(
            "(#100) At least one Messenger Profile property must be set",
        ));
    }
    if let Some(get_started) = get_object(body, "get_started", "get_started")? {
        let param = "get_started[payload]";
        non_empty_max(
            require_str(get_started, "payload", param)?,
            MAX_PAYLOAD,
            param,
        )?;
    }
    if let Some(greetings) = get_array(body, "greeting", "greeting")? {
        for (i, greeting) in greetings.iter().enumerate() {
            let param = format!("greeting[{i}]");
            let greeting = as_object(greeting, &param)?;
            require_str(greeting, "locale", &format!("{param}[locale]"))?;
            let text = require_str(greeting, "text", &format!("{param}[text]"))?;
            max_chars(text, MAX_GREETING, &format!("{param}[text]"))?;
        }
    }
    Ok(body)
}

fn required(param: &str) -> GraphFault {
    GraphFault::invalid(format!("(#100) The parameter {param} is required"))
}

fn one_of(value: &str, allowed: &[&str], param: &str) -> Result<(), GraphFault> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(GraphFault::invalid(format!(
            "(#100) param {param} must be one of {}",
            allowed.join(", ")
        )))
    }
}

fn max_chars(text: &str, max: usize, param: &str) -> Result<(), GraphFault> {
    // Bytes bound chars from above: most texts skip the count.
    if text.len() <= max || text.chars().count() <= max {
        Ok(())
    } else {
        Err(GraphFault::invalid(format!(
            "(#100) Length of param {param} must be less than or equal to {max}"
        )))
    }
}

fn non_empty_max(text: &str, max: usize, param: &str) -> Result<(), GraphFault> {
    if text.is_empty() {
        return Err(GraphFault::invalid(format!(
            "(#100) param {param} must be non-empty"
        )));
    }
    max_chars(text, max, param)
}

fn as_object<'a>(value: &'a Value, param: &str) -> Result<&'a Map<String, Value>, GraphFault> {
    value
        .as_object()
        .ok_or_else(|| GraphFault::invalid(format!("(#100) param {param} must be an object")))
}

fn get_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<&'a str>, GraphFault> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GraphFault::invalid(format!(
            "(#100) param {param} must be a string"
        ))),
    }
}

fn require_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<&'a str, GraphFault> {
    get_str(object, key, param)?.ok_or_else(|| required(param))
}

fn get_object<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<&'a Map<String, Value>>, GraphFault> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => as_object(value, param).map(Some),
    }
}

fn get_array<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<&'a [Value]>, GraphFault> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(GraphFault::invalid(format!(
            "(#100) param {param} must be an array"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn send(message: Value) -> Result<SendRequest, GraphFault> {
        check_send(&json!({
            "recipient": { "id": "1" },
            "messaging_type": "RESPONSE",
            "message": message,
        }))
    }

    fn generic(elements: Vec<Value>) -> Value {
        json!({ "attachment": { "type": "template", "payload": {
            "template_type": "generic", "elements": elements,
        }}})
    }

    #[test]
    fn a_plain_text_send_is_read_back() {
        let request = send(json!({ "text": "hi" })).unwrap();
        assert_eq!(request.recipient, Recipient::Psid("1".into()));
        assert_eq!(request.messaging_type.as_deref(), Some("RESPONSE"));
        assert!(!request.is_action);
    }

    #[test]
    fn generic_templates_take_one_to_ten_elements_with_short_titles() {
        let element = |title: &str| json!({ "title": title, "subtitle": "s" });
        assert!(send(generic(vec![element("Lesson"); 10])).is_ok());
        assert!(send(generic(vec![element("Lesson"); 11])).is_err());
        assert!(send(generic(vec![])).is_err());
        assert!(send(generic(vec![element(&"é".repeat(80))])).is_ok());
        assert!(send(generic(vec![element(&"é".repeat(81))])).is_err());
        assert!(send(generic(vec![json!({ "subtitle": "no title" })])).is_err());
        let with_bad_action = json!({
            "title": "Lesson",
            "default_action": { "type": "web_url", "url": "ftp://example.org" },
        });
        assert!(send(generic(vec![with_bad_action])).is_err());
    }

    #[test]
    fn attachments_and_quick_replies_are_typed() {
        assert!(send(json!({ "attachment": { "type": "image", "payload": { "url": "https://x.org/a.png" } } })).is_ok());
        assert!(send(json!({ "attachment": { "type": "sticker", "payload": {} } })).is_err());
        assert!(send(json!({ "attachment": { "type": "image" } })).is_err());
        assert!(
            send(json!({ "text": "hi", "attachment": { "type": "image", "payload": {} } }))
                .is_err()
        );
        let email =
            json!({ "text": "Your e-mail?", "quick_replies": [{ "content_type": "user_email" }] });
        assert!(send(email).is_ok());
        let location =
            json!({ "text": "Where?", "quick_replies": [{ "content_type": "location" }] });
        assert!(send(location).is_err());
        let long_payload = json!({ "text": "?", "quick_replies": [{
            "content_type": "text", "title": "Yes", "payload": "p".repeat(1001),
        }]});
        assert!(send(long_payload).is_err());
    }

    #[test]
    fn wrong_json_types_are_refused_not_panicked_on() {
        for body in [
            json!({ "recipient": "1", "messaging_type": "RESPONSE", "message": { "text": "hi" } }),
            json!({ "recipient": { "id": true }, "messaging_type": "RESPONSE", "message": { "text": "hi" } }),
            json!({ "recipient": { "id": "1" }, "messaging_type": 3, "message": { "text": "hi" } }),
            json!({ "recipient": { "id": "1" }, "messaging_type": "RESPONSE", "message": "hi" }),
            json!({ "recipient": { "id": "1" }, "messaging_type": "RESPONSE", "message": { "text": 7 } }),
            json!({ "recipient": { "id": "1" }, "messaging_type": "RESPONSE", "message": { "text": "hi", "quick_replies": {} } }),
            json!({ "recipient": { "id": "1" }, "sender_action": "wave" }),
            json!({ "recipient": { "phone_number": "+1" }, "sender_action": "typing_on" }),
        ] {
            assert_eq!(check_send(&body).map_err(|f| f.code), Err(100), "{body}");
        }
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"\xff").is_err());
    }

    #[test]
    fn profiles_check_get_started_and_greetings() {
        assert!(check_profile(&json!({ "get_started": { "payload": "GO" } })).is_ok());
        assert!(check_profile(&json!({ "get_started": {} })).is_err());
        assert!(check_profile(&json!({})).is_err());
        let greeting =
            |text: String| json!({ "greeting": [{ "locale": "default", "text": text }] });
        assert!(check_profile(&greeting("é".repeat(160))).is_ok());
        assert!(check_profile(&greeting("é".repeat(161))).is_err());
    }
}
