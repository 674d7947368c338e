//! Where a character of a script stands: outside quotes, in '...', "...", $'...', `...`, $(...),
//! ${...}, a comment or a here-document's body. Enough of bash's lexing to quote a value for the
//! place it lands in; the places where no quoting is safe for every value (a here-document's body,
//! inside `${...}`) are named, so the renderer refuses an unsafe value there rather than guess.

/// A place in a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Outside quotes; `depth` counts parentheses opened inside a `$(` that opened this frame.
    Bare {
        substitution: bool,
        depth: u32,
    },
    Single,
    Double,
    /// `$'...'`: backslash escapes, closed by `'`.
    AnsiC,
    /// Inside backticks: a command, as outside quotes.
    Backtick,
    /// `${...}`: parameter expansion, where the shell quotes words its own way.
    Param {
        depth: u32,
    },
    /// `# ...` to the end of the line.
    Comment,
    /// The body of a here-document, up to the line that is its delimiter.
    HereDoc {
        delimiter: String,
        line: String,
    },
}

const TOP: Frame = Frame::Bare { substitution: false, depth: 0 };

/// The delimiter word of a here-document being read after `<<`.
#[derive(Debug, Default)]
struct Opener {
    word: String,
    /// A quote or backslash seen in the word, or past the `-` and blanks before it.
    started: bool,
}

#[derive(Debug, Default)]
pub struct Lexer {
    stack: Vec<Frame>,
    escaped: bool,
    prev: Option<char>,
    /// `<<` was seen: the delimiter word is being read.
    opener: Option<Opener>,
    /// Delimiters of here-documents whose bodies start at the next newline.
    pending: Vec<String>,
}

impl Lexer {
    pub fn top(&self) -> &Frame {
        self.stack.last().unwrap_or(&TOP)
    }

    pub fn feed(&mut self, text: &str) {
        for c in text.chars() {
            self.step(c);
            self.prev = Some(c);
        }
    }

    fn step(&mut self, c: char) {
        if self.opener.is_some() && self.read_delimiter(c) {
            return;
        }
        if let Some(Frame::HereDoc { .. }) = self.stack.last() {
            return self.heredoc_body(c);
        }
        if std::mem::take(&mut self.escaped) {
            return;
        }
        let prev = self.prev;
        let command = matches!(self.top(), Frame::Bare { .. } | Frame::Backtick);
        match (self.top().clone(), c) {
            (Frame::Comment, '\n') => {
                self.stack.pop();
                self.step(c)
            }
            (Frame::Comment, _) => {}
            (Frame::Single, '\'') => self.pop(),
            (Frame::Single, _) => {}
            (Frame::AnsiC, '\'') => self.pop(),
            (_, '\\') => self.escaped = true,
            (Frame::AnsiC, _) => {}
            (Frame::Double, '"') => self.pop(),
            (Frame::Backtick, '`') => self.pop(),
            (Frame::Param { depth: 0 }, '}') => self.pop(),
            (Frame::Param { depth }, '}') => self.set_top(Frame::Param { depth: depth - 1 }),
            (Frame::Param { depth }, '{') => self.set_top(Frame::Param { depth: depth + 1 }),
            (_, '`') => self.stack.push(Frame::Backtick),
            (Frame::Bare { .. } | Frame::Double | Frame::Backtick | Frame::Param { .. }, '(') if prev == Some('$') => {
                self.stack.push(Frame::Bare { substitution: true, depth: 0 })
            }
            (Frame::Bare { .. } | Frame::Double | Frame::Backtick, '{') if prev == Some('$') => {
                self.stack.push(Frame::Param { depth: 0 })
            }
            (Frame::Double, _) => {}
            (_, '\'') if command && prev == Some('$') => self.stack.push(Frame::AnsiC),
            (_, '\'') => self.stack.push(Frame::Single),
            (_, '"') => self.stack.push(Frame::Double),
            (Frame::Param { .. }, _) => {}
            (_, '#') if command && prev.is_none_or(|p| p.is_whitespace() || ";&|()".contains(p)) => {
                self.stack.push(Frame::Comment)
            }
            (_, '<') if command && prev == Some('<') => self.opener = Some(Opener::default()),
            (_, '\n') if !self.pending.is_empty() => {
                let delimiter = self.pending.remove(0);
                self.stack.push(Frame::HereDoc { delimiter, line: String::new() })
            }
            (Frame::Bare { substitution, depth }, '(') => self.set_top(Frame::Bare { substitution, depth: depth + 1 }),
            (Frame::Bare { substitution: true, depth: 0 }, ')') => self.pop(),
            (Frame::Bare { substitution, depth }, ')') => {
                self.set_top(Frame::Bare { substitution, depth: depth.saturating_sub(1) })
            }
            _ => {}
        }
    }

    /// Reads the word after `<<` (quotes and a leading `-` are not part of it); true while the
    /// character was the word's. `<<<` is a here-string: no document follows.
    fn read_delimiter(&mut self, c: char) -> bool {
        let Some(o) = self.opener.as_mut() else { return false };
        let word_char = !c.is_whitespace() && !";&|<>()".contains(c);
        match c {
            '<' if !o.started && o.word.is_empty() => {
                self.opener = None;
                return true;
            }
            '-' if !o.started && o.word.is_empty() => return true,
            ' ' | '\t' if !o.started && o.word.is_empty() => return true,
            '\'' | '"' | '\\' => {
                o.started = true;
                return true;
            }
            _ if word_char => {
                o.started = true;
                o.word.push(c);
                return true;
            }
            _ => {}
        }
        let o = self.opener.take().unwrap_or_default();
        if !o.word.is_empty() {
            self.pending.push(o.word);
        }
        false
    }

    fn heredoc_body(&mut self, c: char) {
        let Some(Frame::HereDoc { delimiter, line }) = self.stack.last_mut() else { return };
        if c != '\n' {
            line.push(c);
            return;
        }
        // `<<-` strips leading tabs from the delimiter line: either form ends the document.
        let end = line.trim_start_matches('\t') == delimiter;
        line.clear();
        if end {
            self.stack.pop();
            if !self.pending.is_empty() {
                let delimiter = self.pending.remove(0);
                self.stack.push(Frame::HereDoc { delimiter, line: String::new() });
            }
        }
    }

    fn pop(&mut self) {
        self.stack.pop();
    }

    fn set_top(&mut self, f: Frame) {
        match self.stack.last_mut() {
            Some(top) => *top = f,
            None if f != TOP => self.stack.push(f),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_after(text: &str) -> Frame {
        let mut l = Lexer::default();
        l.feed(text);
        l.top().clone()
    }

    const SUB: Frame = Frame::Bare { substitution: true, depth: 0 };

    #[test]
    fn quotes_escapes_and_substitutions() {
        assert_eq!(frame_after("echo "), TOP);
        assert_eq!(frame_after("echo 'a"), Frame::Single);
        assert_eq!(frame_after("echo 'a' \"b"), Frame::Double);
        assert_eq!(frame_after("echo \"a $(ls "), SUB);
        assert_eq!(frame_after("echo \"a $(ls) "), Frame::Double);
        assert_eq!(frame_after("echo \\' "), TOP);
        assert_eq!(frame_after("echo \"it\\\" "), Frame::Double);
        assert_eq!(frame_after("x=$((1 + (2 * 3)) "), SUB);
        assert_eq!(frame_after("x=$((1 + (2 * 3))) "), TOP);
        assert_eq!(frame_after("echo `ls "), Frame::Backtick);
        assert_eq!(frame_after("( cd /tmp "), Frame::Bare { substitution: false, depth: 1 });
        assert_eq!(frame_after("echo $'it\\'s "), Frame::AnsiC);
        assert_eq!(frame_after("echo $'a' "), TOP);
        assert_eq!(frame_after("echo \"$'a "), Frame::Double, "no ANSI-C quotes inside double quotes");
    }

    #[test]
    fn comments_parameters_and_here_documents() {
        assert_eq!(frame_after("echo a # it's "), Frame::Comment);
        assert_eq!(frame_after("echo a # it's\necho "), TOP);
        assert_eq!(frame_after("echo a#b 'c"), Frame::Single, "# inside a word starts no comment");
        assert_eq!(frame_after("echo ${#x} 'c"), Frame::Single);
        assert_eq!(frame_after("echo \"${X:-"), Frame::Param { depth: 0 });
        assert_eq!(frame_after("echo \"${X:-a}\" "), TOP);
        let doc = |delimiter: &str| Frame::HereDoc { delimiter: delimiter.into(), line: String::new() };
        assert_eq!(frame_after("cat <<EOF > f\n"), doc("EOF"));
        assert_eq!(frame_after("cat <<'EOF' > f "), TOP, "the body starts at the newline");
        assert_eq!(frame_after("cat <<-\"END\"\nit's\n"), doc("END"));
        assert_eq!(frame_after("cat <<EOF\nit's\nEOF\necho 'a"), Frame::Single);
        assert_eq!(frame_after("cat <<-EOF\n\tx\n\tEOF\necho "), TOP);
        assert_eq!(frame_after("cat <<< 'a' "), TOP, "a here-string is a word");
        assert_eq!(frame_after("cat <<A <<B\na\nA\n"), doc("B"));
    }
}
