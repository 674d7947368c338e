//! Laying out formatted lines: `=` alignment over runs of statements,
//! trailing-comment columns, indentation.

use super::INDENT;

/// One line (or one multi-line statement) of a statement list.
pub(super) enum Entry {
    Blank,
    Comment(String),
    Stmt {
        text: String,
        /// What `=` alignment needs: the kind of statement, where the padding
        /// goes (right after the name) and the width before it.
        align: Option<Align>,
        trailing: Option<String>,
    },
}

#[derive(Clone, Copy)]
pub(super) struct Align {
    pub(super) key: u8,
    pub(super) at: usize,
    pub(super) width: usize,
}

/// What the alignment pass sees of a line.
pub(super) enum Slot {
    /// A blank line or a statement that is not aligned: ends the run.
    Break,
    /// A comment line: the run goes on across it.
    Skip,
    Item {
        key: u8,
        width: usize,
        multiline: bool,
    },
}

/// The padding for each slot so that `=` lines up over runs of the same kind
/// of statement. A multi-line statement ends its run (its first line is aligned).
pub(super) fn align(slots: &[Slot]) -> Vec<usize> {
    let mut pads = vec![0; slots.len()];
    let mut run: Vec<(usize, usize)> = vec![];
    let mut run_key = 0;
    let flush = |run: &mut Vec<(usize, usize)>, pads: &mut Vec<usize>| {
        let w = run.iter().map(|&(_, w)| w).max().unwrap_or(0);
        for &(i, wi) in run.iter() {
            pads[i] = w - wi;
        }
        run.clear();
    };
    for (i, s) in slots.iter().enumerate() {
        match s {
            Slot::Break => flush(&mut run, &mut pads),
            Slot::Skip => {}
            Slot::Item { key, width, multiline } => {
                if !run.is_empty() && run_key != *key {
                    flush(&mut run, &mut pads);
                }
                run_key = *key;
                run.push((i, *width));
                if *multiline {
                    flush(&mut run, &mut pads);
                }
            }
        }
    }
    flush(&mut run, &mut pads);
    pads
}

pub(super) fn indent(level: usize) -> String {
    INDENT.repeat(level)
}

pub(super) fn pad_at(text: &str, at: usize, pad: usize) -> String {
    if pad == 0 {
        return text.to_string();
    }
    let mut s = String::with_capacity(text.len() + pad);
    s.push_str(&text[..at]);
    s.push_str(&" ".repeat(pad));
    s.push_str(&text[at..]);
    s
}

/// Prints entries at an indentation level, one per line, each ending in a newline.
pub(super) fn render(entries: &[Entry], level: usize) -> String {
    let slots: Vec<Slot> = entries
        .iter()
        .map(|e| match e {
            Entry::Blank => Slot::Break,
            Entry::Comment(_) => Slot::Skip,
            Entry::Stmt { align: Some(a), text, .. } => Slot::Item { key: a.key, width: a.width, multiline: text.contains('\n') },
            Entry::Stmt { align: None, .. } => Slot::Break,
        })
        .collect();
    let pads = align(&slots);
    let texts: Vec<Option<String>> = entries
        .iter()
        .zip(pads)
        .map(|(e, pad)| match e {
            Entry::Stmt { text, align: Some(a), .. } => Some(pad_at(text, a.at, pad)),
            Entry::Stmt { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    let widths: Vec<Option<usize>> = entries
        .iter()
        .zip(&texts)
        .map(|(e, t)| match (e, t) {
            (Entry::Stmt { trailing: Some(_), .. }, Some(t)) => line_width(t),
            _ => None,
        })
        .collect();
    let gaps = comment_gaps(&widths);
    let ind = indent(level);
    let mut out = String::new();
    for ((e, text), gap) in entries.iter().zip(texts).zip(gaps) {
        match e {
            Entry::Blank => out.push('\n'),
            Entry::Comment(c) => {
                out.push_str(&ind);
                out.push_str(c);
                out.push('\n');
            }
            Entry::Stmt { trailing, .. } => {
                out.push_str(&ind);
                out.push_str(&text.unwrap_or_default());
                if let Some(t) = trailing {
                    out.push_str(&" ".repeat(gap));
                    out.push_str(t);
                }
                out.push('\n');
            }
        }
    }
    out
}

/// The width of a one-line text; `None` for several lines.
pub(super) fn line_width(text: &str) -> Option<usize> {
    (!text.contains('\n')).then(|| text.chars().count())
}

/// Spaces before each trailing comment: two, or more to line the comments up
/// over consecutive one-line lines (at the same indentation) that all have one.
/// `widths` holds the width of each such line, `None` for any other line.
pub(super) fn comment_gaps(widths: &[Option<usize>]) -> Vec<usize> {
    let mut gaps = vec![2; widths.len()];
    let mut i = 0;
    while i < widths.len() {
        let mut j = i;
        while j < widths.len() && widths[j].is_some() {
            j += 1;
        }
        let max = widths[i..j].iter().flatten().max().copied().unwrap_or(0);
        for k in i..j {
            gaps[k] = max - widths[k].unwrap_or(0) + 2;
        }
        i = j + 1;
    }
    gaps
}
