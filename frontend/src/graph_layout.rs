//! The layered layout of a dependency graph, as pure functions: the root on top, each node on
//! the layer of its longest path from the root, layers ordered to cross few edges.
//!
//! No web or crate dependencies, so the tests run on the host without the wasm toolchain:
//! `rustc --edition 2024 --test frontend/src/graph_layout.rs -o /tmp/graph-tests && /tmp/graph-tests`.

/// Sizes of the drawing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spacing {
    /// Height of a node's box.
    pub node_height: f64,
    /// Horizontal gap between boxes of a row.
    pub gap_x: f64,
    /// Vertical gap between rows of boxes.
    pub gap_y: f64,
    /// Wider layers wrap onto several rows of at most this many nodes.
    pub max_per_row: usize,
    /// Margin around the drawing.
    pub margin: f64,
}

impl Default for Spacing {
    fn default() -> Self {
        Spacing { node_height: 24.0, gap_x: 12.0, gap_y: 36.0, max_per_row: 14, margin: 8.0 }
    }
}

/// Where one node goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    /// Its layer: the length of its longest path from the root.
    pub layer: usize,
    /// Left edge and top of its box.
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Placed {
    pub fn center_x(&self) -> f64 {
        self.x + self.w / 2.0
    }

    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Per node, in the input's order.
    pub nodes: Vec<Placed>,
    pub width: f64,
    pub height: f64,
    /// Edges (indices into the input's edges) that close a cycle, so point upwards.
    pub back_edges: Vec<usize>,
}

/// Each node's direct dependencies (`from -> to`: `from` depends on `to`) and dependents.
pub fn neighbours(n: usize, edges: &[(usize, usize)]) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let mut deps = vec![Vec::new(); n];
    let mut dependents = vec![Vec::new(); n];
    for &(from, to) in edges {
        if from < n && to < n && from != to {
            deps[from].push(to);
            dependents[to].push(from);
        }
    }
    (deps, dependents)
}

/// Edges that close a cycle, found by a depth-first search from the root (then from every node
/// not reached yet): without them the graph is acyclic.
pub fn back_edges(n: usize, edges: &[(usize, usize)], root: usize) -> Vec<usize> {
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, &(from, to)) in edges.iter().enumerate() {
        if from < n && to < n {
            out_edges[from].push(k);
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    let mut back = Vec::new();
    let starts = std::iter::once(root).chain(0..n).filter(|&s| s < n);
    for start in starts {
        if mark[start] != Mark::New {
            continue;
        }
        // An explicit stack of (node, next edge to look at): deep graphs do not overflow.
        let mut stack = vec![(start, 0usize)];
        mark[start] = Mark::OnStack;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&k) = out_edges[node].get(*next) {
                *next += 1;
                let to = edges[k].1;
                match mark[to] {
                    Mark::New => {
                        mark[to] = Mark::OnStack;
                        stack.push((to, 0));
                    }
                    Mark::OnStack => back.push(k),
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    back.sort_unstable();
    back
}

/// Each node's layer: the number of edges on its longest path from a node nothing depends on
/// (the root), cycles broken at their back edges.
pub fn layers(n: usize, edges: &[(usize, usize)], root: usize) -> Vec<usize> {
    let back = back_edges(n, edges, root);
    let mut is_back = vec![false; edges.len()];
    for &k in &back {
        is_back[k] = true;
    }
    let mut indegree = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, &(from, to)) in edges.iter().enumerate() {
        if from < n && to < n && from != to && !is_back[k] {
            indegree[to] += 1;
            out[from].push(to);
        }
    }
    // Kahn's topological order; a node's layer is final once all its parents are placed.
    let mut layer = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    while let Some(v) = ready.pop() {
        for &w in &out[v] {
            layer[w] = layer[w].max(layer[v] + 1);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                ready.push(w);
            }
        }
    }
    layer
}

/// Orders the nodes of every layer (lists of node indices, top layer first) by the barycentre
/// of their neighbours, sweeping down and up a few times: fewer crossings than input order.
pub fn order_layers(n: usize, edges: &[(usize, usize)], layer_of: &[usize]) -> Vec<Vec<usize>> {
    let depth = layer_of.iter().copied().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for v in 0..n {
        layers[layer_of[v]].push(v);
    }
    let (deps, dependents) = neighbours(n, edges);
    // A node's place in its layer, as a fraction of the layer's width.
    let mut pos = vec![0.0f64; n];
    let update = |layers: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for layer in layers {
            let len = layer.len() as f64;
            for (i, &v) in layer.iter().enumerate() {
                pos[v] = (i as f64 + 0.5) / len;
            }
        }
    };
    update(&layers, &mut pos);
    for sweep in 0..6 {
        let down = sweep % 2 == 0;
        let range: Vec<usize> =
            if down { (1..depth).collect() } else { (0..depth.saturating_sub(1)).rev().collect() };
        for l in range {
            let key = |v: usize| {
                let others = if down { &dependents[v] } else { &deps[v] };
                if others.is_empty() {
                    pos[v]
                } else {
                    others.iter().map(|&o| pos[o]).sum::<f64>() / others.len() as f64
                }
            };
            // (key, place now, node): ties keep their order without a stable sort.
            let mut keyed: Vec<(f64, usize, usize)> =
                layers[l].iter().enumerate().map(|(at, &v)| (key(v), at, v)).collect();
            keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            layers[l] = keyed.into_iter().map(|(_, _, v)| v).collect();
            let len = layers[l].len() as f64;
            for (i, &v) in layers[l].iter().enumerate() {
                pos[v] = (i as f64 + 0.5) / len;
            }
        }
    }
    layers
}

/// The whole layout: layers, their order, and coordinates for boxes of the given widths.
pub fn layout(widths: &[f64], edges: &[(usize, usize)], root: usize, spacing: Spacing) -> Layout {
    let n = widths.len();
    let layer_of = layers(n, edges, root);
    let ordered = order_layers(n, edges, &layer_of);
    let per_row = spacing.max_per_row.max(1);
    // Rows: each layer wraps onto rows of at most `per_row` nodes.
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for layer in &ordered {
        for chunk in layer.chunks(per_row) {
            rows.push(chunk.to_vec());
        }
    }
    let row_width = |row: &Vec<usize>| {
        row.iter().map(|&v| widths[v]).sum::<f64>() + spacing.gap_x * row.len().saturating_sub(1) as f64
    };
    let inner_width = rows.iter().map(row_width).fold(0.0, f64::max);
    let mut nodes = vec![Placed { layer: 0, x: 0.0, y: 0.0, w: 0.0, h: spacing.node_height }; n];
    let mut y = spacing.margin;
    for row in &rows {
        // Rows are centred.
        let mut x = spacing.margin + (inner_width - row_width(row)) / 2.0;
        for &v in row {
            nodes[v] = Placed { layer: layer_of[v], x, y, w: widths[v], h: spacing.node_height };
            x += widths[v] + spacing.gap_x;
        }
        y += spacing.node_height + spacing.gap_y;
    }
    let height = if rows.is_empty() { 2.0 * spacing.margin } else { y - spacing.gap_y + spacing.margin };
    Layout {
        nodes,
        width: inner_width + 2.0 * spacing.margin,
        height,
        back_edges: back_edges(n, edges, root),
    }
}

/// Which of five shades a node gets for `count` dependents, out of the most any node has.
pub fn shade(count: u32, max: u32) -> u8 {
    if count == 0 || max == 0 {
        return 0;
    }
    // Square root: a few very shared packages should not wash everything else out.
    let f = (count as f64 / max as f64).sqrt();
    (1.0 + f * 3.0).round().clamp(1.0, 4.0) as u8
}

/// A box wide enough for a label of `chars` characters, clamped between `min` and `max`.
pub fn box_width(chars: usize, char_width: f64, min: f64, max: f64) -> f64 {
    (chars as f64 * char_width + 12.0).clamp(min, max)
}

/// The SVG path of an edge from the bottom of `from` to the top of `to` (or, for an edge
/// pointing upwards, from the top of `from` to the bottom of `to`), as a cubic curve.
pub fn edge_path(from: &Placed, to: &Placed) -> String {
    let (x1, x2) = (from.center_x(), to.center_x());
    let (y1, y2) = if to.y > from.y { (from.bottom(), to.y) } else { (from.y, to.bottom()) };
    let mid = (y1 + y2) / 2.0;
    let [x1, y1, x2, y2, mid] = [x1, y1, x2, y2, mid].map(fixed1);
    format!("M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2}")
}

/// A number with one decimal, e.g. `12.5` (float formatting is large in wasm).
fn fixed1(x: f64) -> String {
    let t = (x * 10.0).round() as i64;
    let sign = if t < 0 { "-" } else { "" };
    format!("{sign}{}.{}", t.abs() / 10, t.abs() % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_and_longest_path() {
        // 0 -> 1 -> 2, and the shortcut 0 -> 2: 2 still goes below 1.
        let edges = [(0, 1), (1, 2), (0, 2)];
        assert_eq!(layers(3, &edges, 0), vec![0, 1, 2]);
        // A diamond with a long arm.
        let edges = [(0, 1), (0, 2), (1, 3), (2, 4), (4, 3)];
        assert_eq!(layers(5, &edges, 0), vec![0, 1, 1, 3, 2]);
    }

    #[test]
    fn cycles_are_broken() {
        // 0 -> 1 -> 2 -> 1, and 2 -> 0.
        let edges = [(0, 1), (1, 2), (2, 1), (2, 0)];
        let back = back_edges(3, &edges, 0);
        assert_eq!(back, vec![2, 3]);
        assert_eq!(layers(3, &edges, 0), vec![0, 1, 2]);
    }

    #[test]
    fn unreachable_nodes_and_bad_edges() {
        // 3 is not reachable from the root; an out-of-range edge and a self-loop are ignored.
        let edges = [(0, 1), (3, 2), (1, 1), (7, 0)];
        let l = layers(4, &edges, 0);
        assert_eq!(l, vec![0, 1, 1, 0]);
        let placed = layout(&[10.0; 4], &edges, 0, Spacing::default());
        assert_eq!(placed.nodes.len(), 4);
    }

    #[test]
    fn deep_graphs_do_not_overflow() {
        let n = 20_000;
        let edges: Vec<(usize, usize)> = (0..n - 1).map(|i| (i, i + 1)).collect();
        let l = layers(n, &edges, 0);
        assert_eq!(l[n - 1], n - 1);
    }

    #[test]
    fn ordering_reduces_crossings() {
        // Layer 1: a, b; layer 2: their children given in crossed order.
        // 0 -> 1 (a), 0 -> 2 (b), 1 -> 4, 2 -> 3.
        let edges = [(0, 1), (0, 2), (1, 4), (2, 3)];
        let l = layers(5, &edges, 0);
        let ordered = order_layers(5, &edges, &l);
        assert_eq!(ordered[0], vec![0]);
        let pos = |v: usize| ordered[l[v]].iter().position(|&x| x == v).unwrap();
        // a's child is on a's side, b's child on b's side.
        assert_eq!(pos(1) < pos(2), pos(4) < pos(3));
        // Every node is in exactly one layer.
        let mut all: Vec<usize> = ordered.concat();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn coordinates_do_not_overlap_and_wrap() {
        let n = 31;
        let edges: Vec<(usize, usize)> = (1..n).map(|i| (0, i)).collect();
        let spacing = Spacing { max_per_row: 10, ..Spacing::default() };
        let widths: Vec<f64> = (0..n).map(|i| 20.0 + i as f64).collect();
        let out = layout(&widths, &edges, 0, spacing);
        assert_eq!(out.nodes[0].layer, 0);
        // The root on top, alone.
        assert!(out.nodes[1..].iter().all(|p| p.y > out.nodes[0].y && p.layer == 1));
        // 30 children on 3 rows of 10.
        let mut ys: Vec<f64> = out.nodes[1..].iter().map(|p| p.y).collect();
        ys.sort_by(f64::total_cmp);
        ys.dedup();
        assert_eq!(ys.len(), 3);
        for (i, a) in out.nodes.iter().enumerate() {
            assert!(a.x >= 0.0 && a.x + a.w <= out.width + 1e-9 && a.bottom() <= out.height + 1e-9);
            for b in &out.nodes[i + 1..] {
                let apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.bottom() <= b.y || b.bottom() <= a.y;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
        assert!(out.width <= 10.0 * (50.0 + spacing.gap_x) + 2.0 * spacing.margin);
    }

    #[test]
    fn helpers() {
        let (deps, dependents) = neighbours(3, &[(0, 1), (0, 2), (1, 2)]);
        assert_eq!(deps[0], vec![1, 2]);
        assert_eq!(dependents[2], vec![0, 1]);
        assert_eq!(shade(0, 10), 0);
        assert_eq!(shade(10, 10), 4);
        assert!(shade(1, 100) >= 1 && shade(1, 100) < 4);
        assert_eq!(box_width(3, 7.0, 40.0, 200.0), 40.0);
        assert_eq!(box_width(100, 7.0, 40.0, 200.0), 200.0);
        let a = Placed { layer: 0, x: 0.0, y: 0.0, w: 10.0, h: 10.0 };
        let b = Placed { layer: 1, x: 20.0, y: 30.0, w: 10.0, h: 10.0 };
        assert_eq!(edge_path(&a, &b), "M5.0,10.0 C5.0,20.0 25.0,20.0 25.0,30.0");
        assert_eq!(edge_path(&b, &a), "M25.0,30.0 C25.0,20.0 5.0,20.0 5.0,10.0");
        assert!(layout(&[], &[], 0, Spacing::default()).nodes.is_empty());
    }
}
