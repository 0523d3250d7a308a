//! Rendering a core [`Message`] into Send API message bodies.
//!
//! - Plain text goes as `text`; text longer than [`TEXT_MAX`] is split on word boundaries
//!   (paragraph breaks preferred) into several messages, sent in order.
//! - Choices go as a button template (up to [`BUTTONS_MAX`] postback buttons, text up to
//!   [`BUTTON_TEXT_MAX`]) or as quick replies (up to [`QUICK_REPLIES_MAX`]), as the message's
//!   [`ChoiceStyle`] asks; [`ChoiceStyle::Auto`] picks buttons when they fit. They hang on the
//!   last part of a split text.
//! - Links become URL buttons where buttons fit, and are appended to the text otherwise.
//!
//! Lengths are counted in UTF-16 code units, as Messenger's clients count them (an emoji
//! counts twice), so a part that fits here fits there. Everything is checked before any request
//! is made: a message that cannot be rendered is refused with a [`MessengerRenderError`].

use serde::Serialize;

use crate::message::{ChoiceStyle, Message};

/// Longest text of one message.
pub const TEXT_MAX: usize = 2000;
/// Longest text of a button template.
pub const BUTTON_TEXT_MAX: usize = 640;
/// Most quick replies on one message.
pub const QUICK_REPLIES_MAX: usize = 13;
/// Most buttons on a button template.
pub const BUTTONS_MAX: usize = 3;
/// Longest button or quick-reply title.
pub const TITLE_MAX: usize = 20;
/// Longest postback or quick-reply payload.
pub const PAYLOAD_MAX: usize = 1000;

/// Why a message cannot be rendered for Messenger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessengerRenderError {
    /// More choices than the chosen presentation allows.
    #[error("{count} choices, Messenger shows at most {max} as {shown_as}")]
    TooManyChoices {
        /// How many choices the message has.
        count: usize,
        /// The limit.
        max: usize,
        /// "buttons" or "quick replies".
        shown_as: &'static str,
    },
    /// A choice label or link title is longer than [`TITLE_MAX`].
    #[error("title {title:?} is {len} characters long, Messenger allows {TITLE_MAX}")]
    TitleTooLong {
        /// The title.
        title: String,
        /// Its length in UTF-16 code units.
        len: usize,
    },
    /// A choice payload is longer than [`PAYLOAD_MAX`].
    #[error("payload of choice {label:?} is {len} characters long, Messenger allows {PAYLOAD_MAX}")]
    PayloadTooLong {
        /// The choice's label.
        label: String,
        /// The payload's length.
        len: usize,
    },
}

/// A quick reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuickReply {
    content_type: &'static str,
    title: String,
    payload: String,
}

/// A button of a button template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Button {
    /// Sends `payload` back as a postback.
    Postback {
        /// The label.
        title: String,
        /// The payload.
        payload: String,
    },
    /// Opens a URL.
    WebUrl {
        /// The label.
        title: String,
        /// The URL.
        url: String,
    },
}

/// The `message` object of one Send API call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum OutgoingMessage {
    /// A text message, optionally with quick replies.
    Text {
        /// The text.
        text: String,
        /// The quick replies.
        #[serde(skip_serializing_if = "Option::is_none")]
        quick_replies: Option<Vec<QuickReply>>,
    },
    /// A button template.
    Template {
        /// The template attachment.
        attachment: TemplateAttachment,
    },
}

/// A template attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateAttachment {
    #[serde(rename = "type")]
    kind: &'static str,
    payload: ButtonTemplate,
}

/// The payload of a button template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ButtonTemplate {
    template_type: &'static str,
    text: String,
    buttons: Vec<Button>,
}

impl OutgoingMessage {
    /// The text shown, whatever the form.
    pub fn text(&self) -> &str {
        match self {
            OutgoingMessage::Text { text, .. } => text,
            OutgoingMessage::Template { attachment } => &attachment.payload.text,
        }
    }
}

/// Length as Messenger counts it: UTF-16 code units.
pub fn messenger_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

fn check_title(title: &str) -> Result<(), MessengerRenderError> {
    let len = messenger_len(title);
    if len > TITLE_MAX {
        return Err(MessengerRenderError::TitleTooLong {
            title: title.to_owned(),
            len,
        });
    }
    Ok(())
}

/// Renders `message` into the bodies to send, in order.
pub fn render(message: &Message) -> Result<Vec<OutgoingMessage>, MessengerRenderError> {
    let choices = message.choices();
    for c in choices {
        check_title(c.label())?;
        let len = messenger_len(c.payload());
        if len > PAYLOAD_MAX {
            return Err(MessengerRenderError::PayloadTooLong {
                label: c.label().to_owned(),
                len,
            });
        }
    }
    let use_buttons = match message.style() {
        _ if choices.is_empty() => {
            !message.links().is_empty() && message.links().len() <= BUTTONS_MAX
        }
        ChoiceStyle::Buttons => true,
        ChoiceStyle::QuickReplies => false,
        _ => choices.len() <= BUTTONS_MAX,
    };
    let (max, shown_as) = if use_buttons {
        (BUTTONS_MAX, "buttons")
    } else {
        (QUICK_REPLIES_MAX, "quick replies")
    };
    if choices.len() > max {
        return Err(MessengerRenderError::TooManyChoices {
            count: choices.len(),
            max,
            shown_as,
        });
    }

    // Links become URL buttons while buttons are left; the rest go into the text.
    let mut text = message.text_body().to_owned();
    let mut buttons: Vec<Button> = choices
        .iter()
        .map(|c| Button::Postback {
            title: c.label().to_owned(),
            payload: c.payload().to_owned(),
        })
        .collect();
    for link in message.links() {
        let url = link.url().as_str();
        if use_buttons && buttons.len() < BUTTONS_MAX {
            let title = link.title().unwrap_or("Open link");
            check_title(title)?;
            buttons.push(Button::WebUrl {
                title: title.to_owned(),
                url: url.to_owned(),
            });
        } else if !text.contains(url) && !text.contains(url.trim_end_matches('/')) {
            text.push('\n');
            if let Some(title) = link.title() {
                text.push_str(title);
                text.push_str(": ");
            }
            text.push_str(url);
        }
    }

    let mut parts = split_text(&text, TEXT_MAX);
    if use_buttons
        && parts
            .last()
            .is_some_and(|p| messenger_len(p) > BUTTON_TEXT_MAX)
    {
        if let Some(last) = parts.pop() {
            parts.extend(split_text(&last, BUTTON_TEXT_MAX));
        }
    }
    let last = parts.len().saturating_sub(1);
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            if i < last {
                OutgoingMessage::Text {
                    text: part,
                    quick_replies: None,
                }
            } else if use_buttons {
                OutgoingMessage::Template {
                    attachment: TemplateAttachment {
                        kind: "template",
                        payload: ButtonTemplate {
                            template_type: "button",
                            text: part,
                            buttons: std::mem::take(&mut buttons),
                        },
                    },
                }
            } else {
                let quick_replies = (!choices.is_empty()).then(|| {
                    choices
                        .iter()
                        .map(|c| QuickReply {
                            content_type: "text",
                            title: c.label().to_owned(),
                            payload: c.payload().to_owned(),
                        })
                        .collect()
                });
                OutgoingMessage::Text {
                    text: part,
                    quick_replies,
                }
            }
        })
        .collect())
}

/// Splits `text` into parts of at most `max` UTF-16 code units, cutting at a paragraph break,
/// else a line break, else a space in the second half of the window, else mid-word.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let max = max.max(2);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while messenger_len(rest) > max {
        let window_end = byte_index_at_units(rest, max);
        let window = &rest[..window_end];
        let half = window.len() / 2;
        let cut = ["\n\n", "\n", " ", "\t"]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&i| i >= half && i > 0))
            .unwrap_or(window_end);
        let (head, tail) = rest.split_at(cut);
        parts.push(head.trim_end().to_owned());
        rest = tail.trim_start();
    }
    if !rest.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

/// The byte index of the end of the longest prefix of `s` within `units` UTF-16 code units.
fn byte_index_at_units(s: &str, units: usize) -> usize {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += c.len_utf16();
        if used > units {
            return i;
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn json_of(m: &Message) -> serde_json::Value {
        serde_json::to_value(render(m).unwrap()).unwrap()
    }

    #[test]
    fn plain_text_is_one_text_message() {
        let m = Message::text("Hello Ann").unwrap();
        assert_eq!(json_of(&m), json!([{"text":"Hello Ann"}]));
    }

    #[test]
    fn up_to_three_choices_become_a_button_template_by_default() {
        let m = Message::builder("Ready?")
            .choice("Start", "S")
            .choice("Later", "L")
            .link("https://school.example/l/3", Some("Lesson"))
            .build()
            .unwrap();
        assert_eq!(
            json_of(&m),
            json!([{"attachment":{"type":"template","payload":{"template_type":"button","text":"Ready?","buttons":[
                {"type":"postback","title":"Start","payload":"S"},
                {"type":"postback","title":"Later","payload":"L"},
                {"type":"web_url","title":"Lesson","url":"https://school.example/l/3"}
            ]}}}])
        );
    }

    #[test]
    fn quick_replies_when_asked_or_when_buttons_do_not_fit() {
        let four = (0..4)
            .fold(Message::builder("Pick"), |b, i| {
                b.choice(format!("Option {i}"), format!("P{i}"))
            })
            .link("https://school.example/all", None)
            .build()
            .unwrap();
        let v = json_of(&four);
        assert_eq!(v[0]["quick_replies"].as_array().map(Vec::len), Some(4));
        assert_eq!(
            v[0]["quick_replies"][0],
            json!({"content_type":"text","title":"Option 0","payload":"P0"})
        );
        assert_eq!(
            v[0]["text"], "Pick\nhttps://school.example/all",
            "links that do not fit go in the text"
        );

        let asked = Message::builder("Pick")
            .choice("A", "A")
            .style(ChoiceStyle::QuickReplies)
            .build()
            .unwrap();
        assert!(json_of(&asked)[0]["quick_replies"].is_array());
    }

    #[test]
    fn limits_are_checked_before_anything_is_sent() {
        let long_label = Message::builder("q")
            .choice("x".repeat(21), "P")
            .build()
            .unwrap();
        assert!(matches!(
            render(&long_label),
            Err(MessengerRenderError::TitleTooLong { len: 21, .. })
        ));
        let emoji_label = Message::builder("q")
            .choice("😀".repeat(11), "P")
            .build()
            .unwrap();
        assert!(
            matches!(
                render(&emoji_label),
                Err(MessengerRenderError::TitleTooLong { len: 22, .. })
            ),
            "emoji count as two"
        );
        let long_payload = Message::builder("q")
            .choice("ok", "p".repeat(1001))
            .build()
            .unwrap();
        assert!(matches!(
            render(&long_payload),
            Err(MessengerRenderError::PayloadTooLong { len: 1001, .. })
        ));
        let four_buttons = (0..4)
            .fold(Message::builder("q").style(ChoiceStyle::Buttons), |b, i| {
                b.choice(format!("c{i}"), format!("p{i}"))
            })
            .build()
            .unwrap();
        assert!(matches!(
            render(&four_buttons),
            Err(MessengerRenderError::TooManyChoices {
                count: 4,
                max: 3,
                shown_as: "buttons"
            })
        ));
        let long_link_title = Message::builder("q")
            .link("https://a.example", Some("a very long link title!"))
            .build()
            .unwrap();
        assert!(matches!(
            render(&long_link_title),
            Err(MessengerRenderError::TitleTooLong { .. })
        ));
    }

    #[test]
    fn long_text_splits_on_word_boundaries_in_order() {
        let words: Vec<String> = (0..900).map(|i| format!("word{i}")).collect();
        let text = words.join(" ");
        let parts = split_text(&text, TEXT_MAX);
        assert!(parts.len() >= 3);
        assert!(parts.iter().all(|p| messenger_len(p) <= TEXT_MAX));
        assert_eq!(
            parts.join(" "),
            text,
            "nothing lost, nothing reordered, cut only at spaces"
        );
    }

    #[test]
    fn split_prefers_paragraphs_and_hard_splits_giant_words() {
        let text = format!("{}\n\n{}", "a ".repeat(600).trim(), "b ".repeat(600).trim());
        let parts = split_text(&text, 1500);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].ends_with('a') && parts[1].starts_with('b'));

        let giant = "x".repeat(4500);
        let parts = split_text(&giant, TEXT_MAX);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [2000, 2000, 500]
        );

        let emoji = "😀".repeat(1500);
        let parts = split_text(&emoji, TEXT_MAX);
        assert!(parts.iter().all(|p| messenger_len(p) <= TEXT_MAX));
        assert_eq!(parts.concat(), emoji);
    }

    #[test]
    fn choices_hang_on_the_last_part_and_the_template_text_fits_640() {
        let text = "lorem ipsum ".repeat(250);
        let m = Message::builder(text.clone())
            .choice("Yes", "Y")
            .build()
            .unwrap();
        let parts = render(&m).unwrap();
        assert!(parts.len() >= 2);
        for p in &parts[..parts.len() - 1] {
            assert!(matches!(
                p,
                OutgoingMessage::Text {
                    quick_replies: None,
                    ..
                }
            ));
        }
        match parts.last().unwrap() {
            OutgoingMessage::Template { attachment } => {
                assert!(messenger_len(&attachment.payload.text) <= BUTTON_TEXT_MAX);
                assert_eq!(attachment.payload.buttons.len(), 1);
            }
            other => panic!("expected the buttons on the last part, got {other:?}"),
        }
        let rejoined: Vec<&str> = parts.iter().map(OutgoingMessage::text).collect();
        assert_eq!(rejoined.join(" "), text.trim());
    }
}
