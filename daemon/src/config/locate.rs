//! Field paths (`a.b[2].c`) and finding where one sits in a YAML text.
//!
//! The position comes from serde_norway itself rather than a text scan: a seed walks the
//! document along the path, ignoring siblings, and at the target node returns an error from the
//! visitor; serde_norway stamps that error with the node's mark, which is exactly the position
//! it would report for a type error there. This stays correct for flow style, quoting,
//! comments, multi-line scalars and anchors, which a line scanner would have to reimplement.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A path into the configuration document, printed like serde paths: `mmas[1].address`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// Parses `a.b[2].c`, `[0].x` or the empty root path; `None` if it is malformed.
    pub(super) fn parse(text: &str) -> Option<Self> {
        let mut segments = Vec::new();
        if text.is_empty() {
            return Some(Self(segments));
        }
        for (i, part) in text.split('.').enumerate() {
            let (key, mut indexes) = match part.find('[') {
                Some(at) => part.split_at(at),
                None => (part, ""),
            };
            if key.is_empty() && (i > 0 || indexes.is_empty()) {
                return None;
            }
            if !key.is_empty() {
                segments.push(Segment::Key(key.to_owned()));
            }
            while !indexes.is_empty() {
                let (index, rest) = indexes.strip_prefix('[')?.split_once(']')?;
                segments.push(Segment::Index(index.parse().ok()?));
                indexes = rest;
            }
        }
        Some(Self(segments))
    }

    /// Converts serde_path_to_error's path; stops at a segment it could not name.
    pub(super) fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        let mut segments = Vec::new();
        for segment in path.iter() {
            match segment {
                S::Seq { index } => segments.push(Segment::Index(*index)),
                S::Map { key } => segments.push(Segment::Key(key.clone())),
                S::Enum { variant } => segments.push(Segment::Key(variant.clone())),
                S::Unknown => break,
            }
        }
        Self(segments)
    }

    pub(super) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// This path, then its parents from the longest down, excluding the root.
    pub(super) fn ancestors(&self) -> impl Iterator<Item = FieldPath> + '_ {
        (1..=self.0.len())
            .rev()
            .map(|len| FieldPath(self.0.iter().take(len).cloned().collect()))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based (line, column) of the value at `path` in `text`, if the path exists there.
pub(super) fn locate(text: &str, path: &FieldPath) -> Option<(usize, usize)> {
    let found = Cell::new(false);
    let seed = Walk {
        rest: &path.0,
        found: &found,
    };
    let err = seed
        .deserialize(serde_norway::Deserializer::from_str(text))
        .err()?;
    if !found.get() {
        return None;
    }
    err.location().map(|l| (l.line(), l.column()))
}

struct Walk<'a> {
    rest: &'a [Segment],
    found: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.rest.is_empty() {
            // Target reached: `Target` accepts nothing, so whatever node is here fails and the
            // deserializer stamps the failure with this node's position.
            self.found.set(true);
            deserializer.deserialize_any(Target)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.rest.split_first() else {
            return Ok(());
        };
        while let Some(key) = map.next_key::<serde_norway::Value>()? {
            if key.as_str() == Some(wanted.as_str()) {
                return map.next_value_seed(Walk {
                    rest,
                    found: self.found,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.rest.split_first() else {
            return Ok(());
        };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Walk {
            rest,
            found: self.found,
        })
        .map(|_| ())
    }

    // A scalar where the path goes deeper: the path does not exist in this document.
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Rejects every node (serde's default visitor methods all return an error).
struct Target;

impl Visitor<'_> for Target {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nothing (locating a field)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
name: ha1
home_prefixes:
  - 2001:db8:1::/64
  - \"2001:db8:2::/64\"
security_associations:
  - spi: 256
    key_file: /etc/a.key
  - {spi: 257, key_file: /etc/b.key}
nested:
  inner:
    list: [a, b, c]
";

    fn at(path: &str) -> Option<(usize, usize)> {
        locate(DOC, &FieldPath::parse(path).expect("path parses"))
    }

    #[test]
    fn locates_nested_maps_lists_and_flow_style() {
        assert_eq!(at("name"), Some((2, 7)));
        assert_eq!(at("home_prefixes[0]"), Some((4, 5)));
        assert_eq!(at("home_prefixes[1]"), Some((5, 5)));
        assert_eq!(at("security_associations[0].key_file"), Some((8, 15)));
        assert_eq!(at("security_associations[1].spi"), Some((9, 11)));
        assert_eq!(at("security_associations[1]"), Some((9, 5)));
        assert_eq!(at("nested.inner.list[2]"), Some((12, 18)));
    }

    #[test]
    fn missing_paths_have_no_location() {
        assert_eq!(at("home_prefixes[2]"), None);
        assert_eq!(at("name.deeper"), None);
        assert_eq!(at("absent"), None);
        assert_eq!(at("nested[0]"), None);
    }

    #[test]
    fn path_syntax_round_trips() {
        for path in ["", "a", "a.b", "a[1].b[22][3].c", "[0].x"] {
            let parsed = FieldPath::parse(path).expect("valid path");
            assert_eq!(parsed.to_string(), path);
        }
        for bad in ["a..b", ".a", "a[", "a[x]", "a[1]b", "a.[1]"] {
            assert_eq!(FieldPath::parse(bad), None, "{bad}");
        }
    }
}
