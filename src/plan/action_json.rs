//! An action as the plan JSON has always written it: every field by name, the label
//! included even where it is the id, optional fields left out when empty.

use super::Action;
use serde::ser::{Serialize, SerializeStruct, Serializer};

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Action", 14)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("label", self.label())?;
        st.serialize_field("hash", &self.hash)?;
        st.serialize_field("duration", &self.duration)?;
        st.serialize_field("deps", &self.deps)?;
        st.serialize_field("needs", &self.needs)?;
        st.serialize_field("change", &self.change)?;
        optional(&mut st, "layer", self.layer.as_deref())?;
        optional(&mut st, "group", self.group.get())?;
        optional(&mut st, "launch", self.launch.get())?;
        optional(&mut st, "set", self.set.get())?;
        optional(&mut st, "node", self.node.as_deref())?;
        optional(&mut st, "detail", Some(&*self.detail).filter(|d| !d.is_empty()))?;
        st.end()
    }
}

fn optional<S: SerializeStruct, T: Serialize>(st: &mut S, key: &'static str, v: Option<T>) -> Result<(), S::Error> {
    match v {
        Some(v) => st.serialize_field(key, &v),
        None => st.skip_field(key),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ActionId, Change, Deps, Kind};
    use super::*;

    #[test]
    fn a_pattern_is_written_with_its_id_as_label_and_read_back_the_same() {
        let mut a = Action::new(ActionId::Pattern("p-1".into()), Kind::Pattern, String::new(), "ab".into(), 5.0, Deps::new());
        a.layer = Some("efa".into());
        a.change = Change::Create;
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["label"], "p-1");
        assert_eq!(json["layer"], "efa");
        assert!(json.get("node").is_none() && json.get("detail").is_none());
        let back: Action = serde_json::from_value(json).unwrap();
        assert_eq!(back.label(), "p-1");
        assert_eq!(back.layer.as_deref(), Some("efa"));
    }
}
