//! [`NameSet`]: the small sorted set of names a session records (the flows and methods of its
//! sign-on). A `BTreeSet<String>` allocates a whole B-tree leaf (~300 bytes) for one element;
//! a session holds two such sets, so a million sessions spent over half a gigabyte on them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A sorted set of names without duplicates, stored in one boxed slice of boxed strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NameSet(Box<[Box<str>]>);

impl NameSet {
    /// Whether `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search_by(|n| n.as_ref().cmp(name)).is_ok()
    }

    /// Adds `name` (no-op when present).
    pub fn insert(&mut self, name: impl Into<Box<str>>) {
        let name = name.into();
        if let Err(at) = self.0.binary_search(&name) {
            let mut v = std::mem::take(&mut self.0).into_vec();
            v.insert(at, name);
            self.0 = v.into_boxed_slice();
        }
    }

    /// The names in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.iter().map(|n| n.as_ref())
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: Into<Box<str>>> FromIterator<S> for NameSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut v: Vec<Box<str>> = iter.into_iter().map(Into::into).collect();
        v.sort_unstable();
        v.dedup();
        Self(v.into_boxed_slice())
    }
}

impl<S: Into<Box<str>>> Extend<S> for NameSet {
    fn extend<I: IntoIterator<Item = S>>(&mut self, iter: I) {
        let mut v = std::mem::take(&mut self.0).into_vec();
        v.extend(iter.into_iter().map(Into::into));
        v.sort_unstable();
        v.dedup();
        self.0 = v.into_boxed_slice();
    }
}

impl Serialize for NameSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for NameSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<String>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_same_json_as_a_btreeset() {
        let mut s: NameSet = ["totp", "password", "totp"].into_iter().collect();
        assert_eq!(s.iter().collect::<Vec<_>>(), ["password", "totp"]);
        s.insert("static");
        s.insert("password");
        s.extend(["a".to_string(), "totp".to_string()]);
        assert_eq!(s.len(), 4);
        assert!(s.contains("static") && s.contains("a") && !s.contains("b"));
        let b: std::collections::BTreeSet<&str> = ["a", "password", "static", "totp"].into();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, serde_json::to_string(&b).unwrap());
        assert_eq!(serde_json::from_str::<NameSet>(&json).unwrap(), s);
        assert!(NameSet::default().is_empty());
    }
}
