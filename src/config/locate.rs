//! Turns a field path (`flows[1].bindings[0].stage`) into the line and column of that node in
//! the YAML source, so that semantic errors found after deserialisation can point at the right
//! place. It parses with yaml-rust2's marked events into a small positioned tree; it neither
//! deserialises config nor writes messages.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSeg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Line.
    pub line: usize,
    /// Column.
    pub column: usize,
}

/// Deepest nesting followed; deeper documents are cut off there.
const MAX_DEPTH: usize = 256;

/// Parses a dotted path as serde_path_to_error prints it: `apps[0].headers.user`.
pub fn parse_path(path: &str) -> Vec<PathSeg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        let key_end = rest.find('[').unwrap_or(rest.len());
        let key = &rest[..key_end];
        if !key.is_empty() && key != "?" {
            out.push(PathSeg::Key(key.to_string()));
        }
        rest = &rest[key_end..];
        while let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            if let Ok(i) = r[..end].parse::<usize>() {
                out.push(PathSeg::Index(i));
            }
            rest = &r[end + 1..];
        }
    }
    out
}

fn earliest(a: Position, b: Position) -> Position {
    if (b.line, b.column) < (a.line, a.column) {
        b
    } else {
        a
    }
}

#[derive(Debug)]
enum Node {
    Scalar(String, Position),
    Seq(Vec<Node>, Position),
    Map(Vec<(Node, Node)>, Position),
}

impl Node {
    fn pos(&self) -> Position {
        match self {
            Node::Scalar(_, p) | Node::Seq(_, p) | Node::Map(_, p) => *p,
        }
    }
}

enum Frame {
    Seq(Vec<Node>, Position),
    Map(Vec<(Node, Node)>, Option<Node>, Position),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    skip_depth: usize,
    done: bool,
}

impl Builder {
    fn push_node(&mut self, n: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(n);
                }
                self.done = true;
            }
            Some(Frame::Seq(items, _)) => items.push(n),
            Some(Frame::Map(entries, pending, _)) => match pending.take() {
                None => *pending = Some(n),
                Some(k) => entries.push((k, n)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        let pos = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        if self.skip_depth > 0 {
            match ev {
                Event::SequenceStart(..) | Event::MappingStart(..) => self.skip_depth += 1,
                Event::SequenceEnd | Event::MappingEnd => {
                    self.skip_depth -= 1;
                    if self.skip_depth == 0 {
                        self.push_node(Node::Scalar(String::new(), pos));
                    }
                }
                _ => {}
            }
            return;
        }
        match ev {
            Event::Scalar(v, ..) => self.push_node(Node::Scalar(v, pos)),
            Event::Alias(_) => self.push_node(Node::Scalar(String::new(), pos)),
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => self.skip_depth = 1,
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(Vec::new(), pos)),
            Event::MappingStart(..) => self.stack.push(Frame::Map(Vec::new(), None, pos)),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    // A collection starts where its first child does, if that is earlier
                    // than the event mark (block collections are marked late).
                    Some(Frame::Seq(items, p)) => {
                        let p = items.first().map(|n| earliest(p, n.pos())).unwrap_or(p);
                        Node::Seq(items, p)
                    }
                    Some(Frame::Map(entries, _, p)) => {
                        let p = entries.first().map(|(k, _)| earliest(p, k.pos())).unwrap_or(p);
                        Node::Map(entries, p)
                    }
                    None => return,
                };
                self.push_node(node);
            }
            _ => {}
        }
    }
}

/// Finds the node at `path`: a mapping entry's key position, or a sequence item's position.
/// When the path does not exist fully, the deepest existing prefix is returned. `None` only
/// when the source is not YAML.
pub fn locate(src: &str, path: &[PathSeg]) -> Option<Position> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(src);
    if parser.load(&mut b, false).is_err() {
        return None;
    }
    let root = b.root?;
    let mut node = &root;
    let mut best = Position { line: 1, column: 1 };
    if let Node::Scalar(..) = node {
        return Some(best);
    }
    best = node.pos();
    for seg in path {
        let next = match (node, seg) {
            (Node::Map(entries, _), PathSeg::Key(k)) => entries
                .iter()
                .find(|(key, _)| matches!(key, Node::Scalar(s, _) if s == k))
                .map(|(key, v)| (key.pos(), v)),
            (Node::Seq(items, _), PathSeg::Index(i)) => items.get(*i).map(|v| (v.pos(), v)),
            _ => None,
        };
        match next {
            Some((p, v)) => {
                best = p;
                node = v;
            }
            None => break,
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(src: &str, path: &str) -> Option<(usize, usize)> {
        locate(src, &parse_path(path)).map(|p| (p.line, p.column))
    }

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path("flows[1].bindings[0].stage"),
            vec![
                PathSeg::Key("flows".into()),
                PathSeg::Index(1),
                PathSeg::Key("bindings".into()),
                PathSeg::Index(0),
                PathSeg::Key("stage".into())
            ]
        );
        assert_eq!(parse_path(""), vec![]);
        assert_eq!(
            parse_path("stages.a-b_c.type"),
            vec![
                PathSeg::Key("stages".into()),
                PathSeg::Key("a-b_c".into()),
                PathSeg::Key("type".into())
            ]
        );
    }

    #[test]
    fn finds_keys_items_and_flow_style() {
        let src = "# comment\na:\n  b: 1\n\nflows:\n  - slug: x\n  - slug: y\n    bindings:\n      - { stage: s, order: 1 }\n";
        assert_eq!(at(src, "a.b"), Some((3, 3)));
        assert_eq!(at(src, "flows[1].bindings[0].stage"), Some((9, 11)));
        assert_eq!(at(src, "flows[1].slug"), Some((7, 5)));
        assert_eq!(
            at(src, "flows[1].missing"),
            Some((7, 5)),
            "missing key points at its parent item"
        );
        assert_eq!(at(src, "a.b.c"), Some((3, 3)));
        assert_eq!(at("a: [", "a"), None);
    }

    #[test]
    fn never_panics_on_prefixes_or_depth() {
        let src = "a:\n  b: [1, {c: d}]\n  e: &x {f: g}\n  h: *x\n  'q k': \"v\"\n";
        for i in 0..src.len() {
            let _ = locate(&src[..i], &parse_path("a.b[1].c"));
        }
        let deep = "[".repeat(5000) + &"]".repeat(5000);
        let _ = locate(&deep, &parse_path("x"));
        assert_eq!(at(src, "a.q k"), Some((5, 3)));
    }
}
