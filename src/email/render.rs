//! A [`Message`] as the bodies of an e-mail: plain text, and optionally an HTML alternative.
//!
//! Plain text, in sections separated by a blank line:
//!
//! ```text
//! Which time suits you for the call?
//!
//! 1. Monday 10:00
//! 2. Tuesday 15:00
//!
//! Open lesson: https://school.example/lessons/7
//! ```
//!
//! Choices are numbered in order; a choice that has an answer URL (see
//! [`EmailTransportBuilder::answer_links`](super::EmailTransportBuilder::answer_links)) reads
//! `2. Tuesday 15:00: https://...`. Links are `title: url` lines, or the bare URL when untitled.
//!
//! The HTML alternative says the same: paragraphs of the text (URLs in it become links), an
//! ordered list of the choices (links where they have an answer URL), then the links. Every value
//! that comes from the message (text, labels, titles, URLs) is escaped, so no part of a message
//! can add markup.

use std::fmt::Write as _;

use linkify::{LinkFinder, LinkKind};
use url::Url;

use crate::message::Message;

/// The bodies of one e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bodies {
    /// The `text/plain` body.
    pub(crate) text: String,
    /// The `text/html` alternative, when asked for.
    pub(crate) html: Option<String>,
}

/// Renders `message`; `answer_urls[i]` is the answer URL of choice `i`, if it has one.
pub(crate) fn render(message: &Message, answer_urls: &[Option<Url>], html: bool) -> Bodies {
    Bodies {
        text: plain(message, answer_urls),
        html: html.then(|| to_html(message, answer_urls)),
    }
}

fn answer_url(answer_urls: &[Option<Url>], index: usize) -> Option<&Url> {
    answer_urls.get(index).and_then(Option::as_ref)
}

fn plain(message: &Message, answer_urls: &[Option<Url>]) -> String {
    let mut out = message.text_body().trim_end().to_owned();
    if !message.choices().is_empty() {
        out.push('\n');
        for (i, choice) in message.choices().iter().enumerate() {
            let _ = write!(out, "\n{}. {}", i + 1, choice.label());
            if let Some(url) = answer_url(answer_urls, i) {
                let _ = write!(out, ": {url}");
            }
        }
    }
    if !message.links().is_empty() {
        out.push('\n');
        for link in message.links() {
            match link.title() {
                Some(title) => {
                    let _ = write!(out, "\n{title}: {}", link.url());
                }
                None => {
                    let _ = write!(out, "\n{}", link.url());
                }
            }
        }
    }
    out.push('\n');
    out
}

fn to_html(message: &Message, answer_urls: &[Option<Url>]) -> String {
    let mut out =
        String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n");
    let finder = {
        let mut f = LinkFinder::new();
        f.kinds(&[LinkKind::Url]);
        f
    };
    for paragraph in message
        .text_body()
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        out.push_str("<p>");
        for (n, line) in paragraph.lines().enumerate() {
            if n > 0 {
                out.push_str("<br>\n");
            }
            text_with_links(&mut out, &finder, line);
        }
        out.push_str("</p>\n");
    }
    if !message.choices().is_empty() {
        out.push_str("<ol>\n");
        for (i, choice) in message.choices().iter().enumerate() {
            out.push_str("<li>");
            match answer_url(answer_urls, i) {
                Some(url) => anchor(&mut out, url.as_str(), choice.label()),
                None => escape_into(&mut out, choice.label()),
            }
            out.push_str("</li>\n");
        }
        out.push_str("</ol>\n");
    }
    for link in message.links() {
        out.push_str("<p>");
        anchor(
            &mut out,
            link.url().as_str(),
            link.title().unwrap_or(link.url().as_str()),
        );
        out.push_str("</p>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// Escaped `line`, with its http(s) URLs as links.
fn text_with_links(out: &mut String, finder: &LinkFinder, line: &str) {
    for span in finder.spans(line) {
        let s = span.as_str();
        let is_web = span.kind().is_some()
            && Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if is_web {
            anchor(out, s, s);
        } else {
            escape_into(out, s);
        }
    }
}

fn anchor(out: &mut String, href: &str, label: &str) {
    out.push_str("<a href=\"");
    escape_into(out, href);
    out.push_str("\">");
    escape_into(out, label);
    out.push_str("</a>");
}

/// Escapes for HTML text and double- or single-quoted attribute values alike.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question() -> Message {
        Message::builder("Which time suits you for the call?")
            .choice("Monday 10:00", "CALL_MON")
            .choice("Tuesday 15:00", "CALL_TUE")
            .link("https://school.example/lessons/7", Some("Open lesson"))
            .link("https://school.example/help", None)
            .build()
            .unwrap()
    }

    #[test]
    fn plain_text_numbers_the_choices_and_lists_the_links() {
        let bodies = render(&question(), &[], false);
        assert_eq!(
            bodies.text,
            "Which time suits you for the call?\n\
             \n\
             1. Monday 10:00\n\
             2. Tuesday 15:00\n\
             \n\
             Open lesson: https://school.example/lessons/7\n\
             https://school.example/help\n"
        );
        assert_eq!(bodies.html, None);
    }

    #[test]
    fn a_choice_with_an_answer_url_becomes_a_link() {
        let url = Url::parse("https://school.example/answer?c=CALL_TUE&t=x").unwrap();
        let bodies = render(&question(), &[None, Some(url)], true);
        assert!(bodies.text.contains("\n1. Monday 10:00\n"));
        assert!(
            bodies
                .text
                .contains("\n2. Tuesday 15:00: https://school.example/answer?c=CALL_TUE&t=x\n")
        );
        let html = bodies.html.unwrap();
        assert!(html.contains("<li>Monday 10:00</li>"));
        assert!(html.contains(
            "<li><a href=\"https://school.example/answer?c=CALL_TUE&amp;t=x\">Tuesday 15:00</a></li>"
        ));
    }

    #[test]
    fn a_message_without_choices_or_links_is_its_text() {
        let bodies = render(&Message::text("Welcome!  \n").unwrap(), &[], true);
        assert_eq!(bodies.text, "Welcome!\n");
        let html = bodies.html.unwrap();
        assert!(html.contains("<p>Welcome!</p>"));
        assert!(!html.contains("<ol>"));
    }

    #[test]
    fn html_escapes_every_user_controlled_value() {
        let m = Message::builder(
            "<script>alert('x')</script> & \"more\"\nsee https://a.example/?q=<b>",
        )
        .choice("<img src=x onerror=alert(1)>", "P")
        .link(
            "https://school.example/l?a=1&b=\"2\"",
            Some("<b>bold</b> & 'quoted'"),
        )
        .build()
        .unwrap();
        let html = render(&m, &[], true).html.unwrap();
        for raw in ["<script>", "<img", "<b>", "'x'", "\"more\""] {
            assert!(!html.contains(raw), "{raw} left unescaped in {html}");
        }
        assert!(html.contains(
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;<br>"
        ));
        assert!(html.contains("<li>&lt;img src=x onerror=alert(1)&gt;</li>"));
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &#39;quoted&#39;</a>"));
        // A URL in the text becomes a link, itself escaped.
        assert!(
            html.contains("see <a href=\"https://a.example/?q="),
            "{html}"
        );
        // The plain text is left as written: it is not markup.
        assert!(
            render(&m, &[], false)
                .text
                .starts_with("<script>alert('x')</script>")
        );
    }

    #[test]
    fn html_keeps_paragraphs_and_links_urls_in_the_text_only_for_the_web() {
        let m = Message::text(
            "Hi Ann,\n\nLesson 4 is open: https://school.example/l/4\nftp://old.example/f",
        )
        .unwrap();
        let html = render(&m, &[], true).html.unwrap();
        assert!(html.contains("<p>Hi Ann,</p>\n<p>Lesson 4 is open: <a href=\"https://school.example/l/4\">https://school.example/l/4</a><br>\nftp://old.example/f</p>"), "{html}");
    }
}
