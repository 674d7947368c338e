//! An optional number in 4 bytes where `Option<u32>` takes 8: an action's group, launch and
//! node set, of which a million pattern actions each carry three.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// `u32::MAX` stands for none: no plan has four billion launches.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OptU32(u32);

impl OptU32 {
    pub const NONE: OptU32 = OptU32(u32::MAX);

    pub fn get(self) -> Option<u32> {
        (self.0 != u32::MAX).then_some(self.0)
    }
    pub fn is_none(self) -> bool {
        self.0 == u32::MAX
    }
}

impl Default for OptU32 {
    fn default() -> OptU32 {
        OptU32::NONE
    }
}

impl From<Option<u32>> for OptU32 {
    fn from(v: Option<u32>) -> OptU32 {
        // A number that cannot be stored reads as none rather than as another number.
        OptU32(v.filter(|&n| n != u32::MAX).unwrap_or(u32::MAX))
    }
}

impl From<u32> for OptU32 {
    fn from(v: u32) -> OptU32 {
        OptU32::from(Some(v))
    }
}

impl fmt::Debug for OptU32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl Serialize for OptU32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de> Deserialize<'de> for OptU32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OptU32, D::Error> {
        Option::<u32>::deserialize(d).map(OptU32::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_number_reads_and_writes_as_an_option() {
        assert_eq!(std::mem::size_of::<OptU32>(), 4);
        assert_eq!(OptU32::from(Some(0)).get(), Some(0));
        assert_eq!(OptU32::from(None).get(), None);
        assert_eq!(OptU32::from(Some(u32::MAX)).get(), None);
        assert_eq!(serde_json::to_string(&OptU32::from(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<OptU32>("null").unwrap(), OptU32::NONE);
        assert_eq!(serde_json::from_str::<OptU32>("3").unwrap().get(), Some(3));
    }
}
