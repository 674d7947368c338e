//! A shared string behind one pointer: 8 bytes in an action where `Arc<str>` or `Box<str>`
//! take 16. Layer names are shared by every action of their layer; labels and nodes are set
//! only on the few actions that are not patterns. A million pattern actions carry three null
//! pointers, not three empty fat ones.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

#[derive(Clone, PartialEq, Eq)]
pub struct ThinStr(Arc<Box<str>>);

impl Deref for ThinStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ThinStr {
    fn from(s: &str) -> ThinStr {
        ThinStr(Arc::new(s.into()))
    }
}

impl From<String> for ThinStr {
    fn from(s: String) -> ThinStr {
        ThinStr(Arc::new(s.into_boxed_str()))
    }
}

impl fmt::Debug for ThinStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for ThinStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}

impl<'de> Deserialize<'de> for ThinStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ThinStr, D::Error> {
        String::deserialize(d).map(ThinStr::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_thin_string_is_one_pointer_and_reads_as_the_text() {
        assert_eq!(std::mem::size_of::<Option<ThinStr>>(), std::mem::size_of::<usize>());
        let s = ThinStr::from("efa");
        assert_eq!(&*s, "efa");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"efa\"");
        assert_eq!(serde_json::from_str::<ThinStr>("\"efa\"").unwrap(), s);
    }
}
