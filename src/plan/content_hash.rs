//! An action's content hash as the plan keeps it: the 16 bytes of `state::content_hash`
//! in place (no allocation per action for a million patterns), written as the same hex text.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub enum ContentHash {
    /// 32 lowercase hex digits, as `state::content_hash` makes them.
    Hex([u8; 16]),
    /// Anything else (no hash, or one written by hand), kept as given.
    Text(Box<str>),
}

impl ContentHash {
    pub fn new(s: &str) -> ContentHash {
        match parse_hex(s) {
            Some(b) => ContentHash::Hex(b),
            None => ContentHash::Text(s.into()),
        }
    }
}

impl ContentHash {
    /// The first 8 characters: enough to tell result files of one id apart.
    pub fn short(&self) -> String {
        self.to_string().chars().take(8).collect()
    }
}

fn parse_hex(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, pair) in b.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentHash::Hex(b) => b.iter().try_for_each(|x| write!(f, "{x:02x}")),
            ContentHash::Text(s) => f.write_str(s),
        }
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl PartialEq<String> for ContentHash {
    fn eq(&self, other: &String) -> bool {
        match self {
            ContentHash::Hex(b) => parse_hex(other).is_some_and(|o| &o == b),
            ContentHash::Text(s) => **s == **other,
        }
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ContentHash, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(ContentHash::new(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_hash_reads_and_writes_as_the_text_it_came_from() {
        let h = crate::state::content_hash(&("x", 1));
        let c = ContentHash::new(&h);
        assert!(matches!(c, ContentHash::Hex(_)));
        assert_eq!(c.to_string(), h);
        assert!(c == h && c != "0".repeat(32));
        for odd in ["", "ab", "0123456789ABCDEF0123456789ABCDEF"] {
            let c = ContentHash::new(odd);
            assert!(matches!(c, ContentHash::Text(_)) && c.to_string() == odd && c == odd.to_string());
        }
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ContentHash>(&json).unwrap(), c);
        assert_eq!(serde_json::to_string(&ContentHash::new(&h)).unwrap(), format!("\"{h}\""));
    }
}
