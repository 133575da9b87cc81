//! The module layering of ffi/src stays as docs/ARCHITECTURE.md says: the
//! `base` layer (status codes, error object, boundary) imports no export
//! family, and no two modules import each other, directly or around a
//! circle; inside `base` the same holds between its files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Identifiers following each occurrence of `prefix` in `text`.
fn refs_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = path.iter().position(|p| p == n).unwrap();
                let mut c = path[at..].to_vec();
                c.push(n.to_string());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

fn rust_files(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn ffi_modules_form_layers_without_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, text) in rust_files(&src) {
        if name != "lib" {
            let mut deps = refs_after(&text, "crate::");
            deps.remove(&name);
            graph.insert(name, deps);
        }
    }
    let mut base_text = String::new();
    for (_, text) in rust_files(&src.join("base")) {
        base_text.push_str(&text);
    }
    graph.insert("base".into(), refs_after(&base_text, "crate::"));
    assert!(graph.len() > 8, "modules found: {:?}", graph.keys());
    assert_eq!(
        graph["base"],
        BTreeSet::new(),
        "base must not import export families"
    );
    for (m, deps) in &graph {
        if m != "base" {
            assert!(deps.contains("base"), "{m} should build on base: {deps:?}");
        }
    }
    assert_eq!(cycle(&graph), None, "import circle among ffi modules");

    // Inside base: references to sibling files, through super:: paths.
    let files = rust_files(&src.join("base"));
    let names: BTreeSet<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let mut inner = BTreeMap::new();
    for (name, text) in &files {
        if name == "mod" {
            continue;
        }
        let mut deps: BTreeSet<String> = refs_after(text, "super::")
            .into_iter()
            .filter(|d| names.contains(d) && d != name)
            .collect();
        deps.remove("super");
        inner.insert(name.clone(), deps);
    }
    assert_eq!(cycle(&inner), None, "import circle inside base");
    assert!(inner["guard"].is_empty(), "{:?}", inner["guard"]);
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    let c = cycle(&g).unwrap();
    assert_eq!(c.first(), c.last());
    assert_eq!(c.len(), 4);
    assert_eq!(refs_after("use crate::x::y; crate::zz", "crate::").len(), 2);
}
