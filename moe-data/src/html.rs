//! HTML to plain text with html5gum's WHATWG-conformant tokenizer.
//!
//! - tags, comments and doctypes are dropped; character references (`&amp;`, `&#8230;`,
//!   `&nbsp;`) are decoded by the tokenizer;
//! - the contents of `script`, `style`, `noscript`, `template`, `title`, `textarea`, `iframe`,
//!   `noembed`, `noframes`, `svg`, `math` and `select` are dropped (raw-text elements are
//!   tokenized in their raw-text states, as a browser would, so `</p>` inside a script is not
//!   a tag);
//! - whitespace collapses to one space, except inside `pre`/`listing`/`plaintext`;
//! - block structure becomes line breaks: paragraph-level blocks (`p`, `h1`–`h6`, `pre`,
//!   `blockquote`, `table`, `ul`, `ol`, `section`, …) end with a blank line, so the text's
//!   paragraphs are the page's; line-level blocks (`div`, `li`, `tr`, `dt`, `dd`, `br`, …) end
//!   with a newline; table cells are separated by a space; two `br` in a row make a blank line;
//! - list items start with `- ` (inside `ol`: `1. `, `2. `, …).
//!
//! No tree is built (text needs none): one streaming pass over the tokens. The tokenizer
//! switches to the raw-text states after `script`, `style`, `textarea`, `title`, … itself
//! (html5gum's `naively_switch_states`, the mapping lol-html uses).

use html5gum::{DefaultEmitter, Token, Tokenizer};

/// The plain text of an HTML document (see the module docs for the rules).
pub fn html_to_text(html: &str) -> String {
    let mut emitter = DefaultEmitter::default();
    emitter.naively_switch_states(true);
    let mut state = State::default();
    // Reading from a `&str` cannot fail: the error type is `Infallible`.
    for token in Tokenizer::new_with_emitter(html, emitter).flatten() {
        match token {
            Token::String(text) => state.text(&String::from_utf8_lossy(&text)),
            Token::StartTag(tag) => {
                state.tag(&String::from_utf8_lossy(&tag.name), true, tag.self_closing)
            }
            Token::EndTag(tag) => state.tag(&String::from_utf8_lossy(&tag.name), false, false),
            Token::Comment(_) | Token::Doctype(_) | Token::Error(_) => {}
        }
    }
    let text = state.out.trim();
    if text.len() == state.out.len() {
        state.out
    } else {
        text.to_owned()
    }
}

/// A break owed before the next text, strongest wins.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Pending {
    #[default]
    None,
    Space,
    Line,
    Paragraph,
}

#[derive(Debug, Default)]
struct State {
    out: String,
    pending: Pending,
    /// Element whose contents are being dropped, and how many of it are open.
    skip: Option<(String, usize)>,
    /// Open `pre`-like elements (whitespace kept).
    pre_depth: usize,
    /// Open lists: `None` for `ul`, `Some(last number)` for `ol`.
    lists: Vec<Option<u32>>,
}

/// Raw-text elements: their contents are text to the tokenizer, never markup.
fn is_raw_text(name: &str) -> bool {
    matches!(
        name,
        "script"
            | "style"
            | "xmp"
            | "iframe"
            | "noembed"
            | "noframes"
            | "noscript"
            | "title"
            | "textarea"
            | "plaintext"
    )
}

/// Elements whose text is not page content.
fn is_skipped(name: &str) -> bool {
    matches!(
        name,
        "script"
            | "style"
            | "noscript"
            | "template"
            | "title"
            | "textarea"
            | "iframe"
            | "noembed"
            | "noframes"
            | "svg"
            | "math"
            | "select"
    )
}

/// The break a block element puts around itself.
fn block_break(name: &str) -> Pending {
    match name {
        "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "pre" | "listing" | "xmp"
        | "blockquote" | "table" | "ul" | "ol" | "dl" | "section" | "article" | "header"
        | "footer" | "aside" | "nav" | "main" | "figure" | "form" | "fieldset" | "details"
        | "address" | "hr" | "center" | "body" | "html" => Pending::Paragraph,
        "div" | "li" | "tr" | "dt" | "dd" | "figcaption" | "summary" | "caption" | "option"
        | "legend" | "thead" | "tbody" | "tfoot" | "label" => Pending::Line,
        "td" | "th" => Pending::Space,
        _ => Pending::None,
    }
}

impl State {
    fn owe(&mut self, pending: Pending) {
        self.pending = self.pending.max(pending);
    }

    fn flush_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if self.out.is_empty() {
            return;
        }
        match pending {
            Pending::None => {}
            Pending::Space => {
                if !self.out.ends_with([' ', '\n']) {
                    self.out.push(' ');
                }
            }
            Pending::Line => {
                trim_end_spaces(&mut self.out);
                if !self.out.ends_with('\n') {
                    self.out.push('\n');
                }
            }
            Pending::Paragraph => {
                trim_end_spaces(&mut self.out);
                let newlines = self.out.len() - self.out.trim_end_matches('\n').len();
                for _ in newlines..2 {
                    self.out.push('\n');
                }
            }
        }
    }

    fn text(&mut self, s: &str) {
        if self.skip.is_some() {
            return;
        }
        if self.pre_depth > 0 {
            self.flush_pending();
            self.out.push_str(s);
            return;
        }
        for c in s.chars() {
            if c.is_whitespace() {
                self.owe(Pending::Space);
            } else {
                self.flush_pending();
                self.out.push(c);
            }
        }
    }

    /// Handles a start or end tag.
    fn tag(&mut self, name: &str, start: bool, self_closing: bool) {
        if let Some((skipped, depth)) = &mut self.skip {
            if skipped == name {
                if start && !self_closing {
                    *depth += 1;
                } else if !start {
                    *depth -= 1;
                    if *depth == 0 {
                        self.skip = None;
                    }
                }
            }
        } else if start && is_skipped(name) && (is_raw_text(name) || !self_closing) {
            self.skip = Some((name.to_owned(), 1));
        } else if start {
            self.start_tag(name);
        } else {
            self.end_tag(name);
        }
    }

    fn start_tag(&mut self, name: &str) {
        match name {
            "br" => {
                let pending = if self.pending >= Pending::Line {
                    Pending::Paragraph
                } else {
                    Pending::Line
                };
                self.owe(pending);
            }
            "li" => {
                self.owe(Pending::Line);
                self.flush_pending();
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{n}. ")
                    }
                    _ => "- ".to_owned(),
                };
                self.out.push_str(&marker);
            }
            "ul" | "ol" => {
                self.owe(block_break(name));
                self.lists.push((name == "ol").then_some(0));
            }
            "pre" | "listing" | "plaintext" | "xmp" => {
                self.owe(Pending::Paragraph);
                self.pre_depth += 1;
            }
            _ => self.owe(block_break(name)),
        }
    }

    fn end_tag(&mut self, name: &str) {
        match name {
            "ul" | "ol" => {
                self.lists.pop();
            }
            "pre" | "listing" | "xmp" => self.pre_depth = self.pre_depth.saturating_sub(1),
            _ => {}
        }
        self.owe(block_break(name));
    }
}

fn trim_end_spaces(s: &mut String) {
    let keep = s.trim_end_matches([' ', '\t']).len();
    s.truncate(keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (html, expected text) pairs.
    const CASES: &[(&str, &str)] = &[
        ("<p>Hello <b>world</b></p>", "Hello world"),
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("a<br>b<br><br>c", "a\nb\n\nc"),
        ("<div>x</div><div>y</div>", "x\ny"),
        (
            "<script>var s = '<p>not text</p>';</script><p>kept</p>",
            "kept",
        ),
        (
            "<style>p { color: red }</style><p>styled</p><!-- comment -->",
            "styled",
        ),
        ("<p>Fish &amp; chips &#8230; &lt;ok&gt;&nbsp;x</p>", "Fish & chips … <ok> x"),
        ("<ul><li>a</li><li> b </li></ul>", "- a\n- b"),
        ("<ol><li>a<li>b</ol><p>after</p>", "1. a\n2. b\n\nafter"),
        ("<table><tr><td>1</td><td>2</td></tr><tr><td>3</td></tr></table>", "1 2\n3"),
        ("<pre>  keep\n   spaces</pre>after", "keep\n   spaces\n\nafter"),
        (
            "<html><head><title>T</title><meta charset=utf-8></head><body>  body\n text </body></html>",
            "body text",
        ),
        ("<template><p>hidden</p></template>shown", "shown"),
        ("<svg><text>drawn</text></svg>plain", "plain"),
        ("<h1>Title</h1>Intro text\n\n\nwith   gaps", "Title\n\nIntro text with gaps"),
        ("unclosed <p>para <b>bold", "unclosed\n\npara bold"),
        ("<textarea><p>typed</p></textarea>x", "x"),
    ];

    #[test]
    fn html_cases() {
        for (html, expected) in CASES {
            assert_eq!(&html_to_text(html), expected, "html: {html}");
        }
    }

    #[test]
    fn empty_and_tag_only_documents_give_empty_text() {
        assert_eq!(html_to_text(""), "");
        assert_eq!(html_to_text("<html><body><div></div></body></html>"), "");
    }
}
