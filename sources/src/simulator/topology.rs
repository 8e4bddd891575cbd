//! Mesh topologies: random geometric graphs and Barabási–Albert graphs, always connected.

use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::TopologyKind;

/// An undirected simple graph on nodes `0..nodes`, with a compact adjacency index.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    /// Number of nodes; ids are `0..nodes`.
    pub nodes: usize,
    /// Every edge once as `(u, v)` with `u < v`, sorted.
    pub edges: Vec<(u64, u64)>,
    /// `adjacency[offsets[n]..offsets[n + 1]]` are the neighbours of `n`.
    offsets: Vec<usize>,
    /// Concatenated sorted neighbour lists.
    adjacency: Vec<u64>,
}

impl Topology {
    /// Builds a topology from any edge list: orients edges `u < v`, drops self loops
    /// and duplicates, and indexes neighbours.
    ///
    /// # Panics
    /// If an endpoint is not below `nodes`.
    pub fn from_edges(nodes: usize, mut edges: Vec<(u64, u64)>) -> Topology {
        for e in &mut edges {
            assert!(
                e.0 < nodes as u64 && e.1 < nodes as u64,
                "edge {e:?} has an endpoint outside 0..{nodes}"
            );
            if e.0 > e.1 {
                *e = (e.1, e.0);
            }
        }
        edges.retain(|&(u, v)| u != v);
        edges.sort_unstable();
        edges.dedup();
        let mut offsets = vec![0usize; nodes + 1];
        for &(u, v) in &edges {
            offsets[u as usize + 1] += 1;
            offsets[v as usize + 1] += 1;
        }
        for i in 0..nodes {
            offsets[i + 1] += offsets[i];
        }
        // Edges are sorted by (u, v), so each list receives its smaller neighbours
        // (as `v`) in ascending order before its larger ones (as `u`): lists come out sorted.
        let mut fill = offsets.clone();
        let mut adjacency = vec![0u64; edges.len() * 2];
        for &(u, v) in &edges {
            adjacency[fill[u as usize]] = v;
            fill[u as usize] += 1;
            adjacency[fill[v as usize]] = u;
            fill[v as usize] += 1;
        }
        Topology {
            nodes,
            edges,
            offsets,
            adjacency,
        }
    }

    /// Builds the topology a config asks for, deterministically from `seed`.
    pub(crate) fn generate(
        kind: TopologyKind,
        nodes: usize,
        mean_degree: f64,
        seed: u64,
    ) -> Topology {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let edges = match kind {
            TopologyKind::Geometric => geometric(nodes, mean_degree, &mut rng),
            TopologyKind::BarabasiAlbert => barabasi_albert(nodes, mean_degree, &mut rng),
        };
        Topology::from_edges(nodes, edges)
    }

    /// The sorted neighbours of node `n` (empty for an unknown node).
    pub fn neighbours(&self, n: u64) -> &[u64] {
        &self.adjacency[self.edge_range(n)]
    }

    /// Number of neighbours of node `n`.
    pub fn degree(&self, n: u64) -> usize {
        self.edge_range(n).len()
    }

    /// Mean number of neighbours per node.
    pub fn mean_degree(&self) -> f64 {
        if self.nodes == 0 {
            0.0
        } else {
            2.0 * self.edges.len() as f64 / self.nodes as f64
        }
    }

    /// Largest number of neighbours of any node.
    pub fn max_degree(&self) -> usize {
        (0..self.nodes as u64)
            .map(|n| self.degree(n))
            .max()
            .unwrap_or(0)
    }

    /// Whether every node can reach every other.
    pub fn is_connected(&self) -> bool {
        if self.nodes == 0 {
            return true;
        }
        let mut seen = vec![false; self.nodes];
        let mut stack = vec![0u64];
        seen[0] = true;
        let mut reached = 1;
        while let Some(n) = stack.pop() {
            for &m in self.neighbours(n) {
                if !seen[m as usize] {
                    seen[m as usize] = true;
                    reached += 1;
                    stack.push(m);
                }
            }
        }
        reached == self.nodes
    }

    /// Positions of node `n`'s neighbours in the directed-edge index (for per-edge tables).
    pub(crate) fn edge_range(&self, n: u64) -> Range<usize> {
        match usize::try_from(n) {
            Ok(i) if i < self.nodes => self.offsets[i]..self.offsets[i + 1],
            _ => 0..0,
        }
    }

    /// Number of directed edges (twice the undirected count).
    pub(crate) fn directed_len(&self) -> usize {
        self.adjacency.len()
    }
}

/// Barabási–Albert: a clique of `m + 1` seeds, then each node links to `m` distinct
/// earlier nodes picked with probability proportional to their degree.
fn barabasi_albert(nodes: usize, mean_degree: f64, rng: &mut ChaCha8Rng) -> Vec<(u64, u64)> {
    let m = ((mean_degree / 2.0).round() as usize).clamp(1, nodes - 1);
    let seeds = (m + 1).min(nodes);
    let mut edges = Vec::with_capacity(seeds * seeds / 2 + (nodes - seeds) * m);
    // Each edge's two endpoints: drawing uniformly from here is degree-proportional.
    let mut ends: Vec<u64> = Vec::with_capacity(2 * edges.capacity());
    for u in 0..seeds as u64 {
        for v in u + 1..seeds as u64 {
            edges.push((u, v));
            ends.extend([u, v]);
        }
    }
    let mut chosen: Vec<u64> = Vec::with_capacity(m);
    for v in seeds as u64..nodes as u64 {
        chosen.clear();
        while chosen.len() < m {
            let t = ends[rng.random_range(0..ends.len())];
            if !chosen.contains(&t) {
                chosen.push(t);
            }
        }
        for &t in &chosen {
            edges.push((t, v));
            ends.extend([t, v]);
        }
    }
    edges
}

/// Expected degree of a node in a random geometric graph of `n` points in the unit
/// square with radius `r <= 1`, boundary effects included.
fn expected_degree(n: usize, r: f64) -> f64 {
    (n - 1) as f64 * (std::f64::consts::PI * r * r - 8.0 / 3.0 * r.powi(3) + 0.5 * r.powi(4))
}

/// The radius that gives `mean_degree` in expectation.
fn geometric_radius(n: usize, mean_degree: f64) -> f64 {
    let at_one = expected_degree(n, 1.0);
    if mean_degree >= at_one {
        // Past r = 1 the closed form changes; interpolate up to sqrt(2), where all pairs link.
        let full = (n - 1) as f64;
        let t = ((mean_degree - at_one) / (full - at_one).max(f64::EPSILON)).clamp(0.0, 1.0);
        return 1.0 + t * (std::f64::consts::SQRT_2 - 1.0);
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        if expected_degree(n, mid) < mean_degree {
            lo = mid
        } else {
            hi = mid
        }
    }
    hi
}

/// Points of the unit square bucketed into a `side × side` grid of square cells.
struct Grid {
    side: usize,
    points: Vec<(f64, f64)>,
    /// `order[start[c]..start[c + 1]]` are the points in cell `c`.
    start: Vec<u32>,
    order: Vec<u32>,
}

impl Grid {
    fn new(points: Vec<(f64, f64)>, min_cell: f64) -> Grid {
        // Cells at least `min_cell` wide, and no more cells than points.
        let cell = min_cell.max(1.0 / (points.len() as f64).sqrt());
        let side = ((1.0 / cell).floor() as usize).max(1);
        let cells = side * side;
        let mut start = vec![0u32; cells + 1];
        let cell_ids: Vec<usize> = points.iter().map(|&p| Self::cell_of(side, p)).collect();
        for &c in &cell_ids {
            start[c + 1] += 1;
        }
        for c in 0..cells {
            start[c + 1] += start[c];
        }
        let mut fill = start.clone();
        let mut order = vec![0u32; points.len()];
        for (i, &c) in cell_ids.iter().enumerate() {
            order[fill[c] as usize] = i as u32;
            fill[c] += 1;
        }
        Grid {
            side,
            points,
            start,
            order,
        }
    }

    fn cell_of(side: usize, (x, y): (f64, f64)) -> usize {
        let cx = ((x * side as f64) as usize).min(side - 1);
        let cy = ((y * side as f64) as usize).min(side - 1);
        cy * side + cx
    }

    fn cell_xy(&self, i: usize) -> (usize, usize) {
        let c = Self::cell_of(self.side, self.points[i]);
        (c % self.side, c / self.side)
    }

    fn members(&self, cx: usize, cy: usize) -> &[u32] {
        let c = cy * self.side + cx;
        &self.order[self.start[c] as usize..self.start[c + 1] as usize]
    }

    fn dist2(&self, i: usize, j: usize) -> f64 {
        let (a, b) = (self.points[i], self.points[j]);
        (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)
    }

    /// Calls `f` on every point in the cells at Chebyshev distance exactly `k` from `(cx, cy)`.
    fn ring(&self, cx: usize, cy: usize, k: usize, mut f: impl FnMut(usize)) {
        let side = self.side as i64;
        let (cx, cy, k) = (cx as i64, cy as i64, k as i64);
        let mut visit = |x: i64, y: i64| {
            if (0..side).contains(&x) && (0..side).contains(&y) {
                for &j in self.members(x as usize, y as usize) {
                    f(j as usize);
                }
            }
        };
        if k == 0 {
            visit(cx, cy);
            return;
        }
        for x in cx - k..=cx + k {
            visit(x, cy - k);
            visit(x, cy + k);
        }
        for y in cy - k + 1..cy + k {
            visit(cx - k, y);
            visit(cx + k, y);
        }
    }
}

/// A union–find forest with path halving and union by size.
struct Components {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl Components {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
    }
}

/// Random geometric graph in the unit square, made connected by linking every component
/// but the largest to the nearest node outside it, round after round (Borůvka style).
fn geometric(nodes: usize, mean_degree: f64, rng: &mut ChaCha8Rng) -> Vec<(u64, u64)> {
    let r = geometric_radius(nodes, mean_degree);
    let points: Vec<(f64, f64)> = (0..nodes)
        .map(|_| (rng.random::<f64>(), rng.random::<f64>()))
        .collect();
    let grid = Grid::new(points, r);
    let r2 = r * r;
    let mut edges = Vec::with_capacity((nodes as f64 * mean_degree * 0.55) as usize);
    for i in 0..nodes {
        let (cx, cy) = grid.cell_xy(i);
        for k in 0..=1 {
            grid.ring(cx, cy, k, |j| {
                if j > i && grid.dist2(i, j) <= r2 {
                    edges.push((i as u64, j as u64));
                }
            });
        }
    }
    let mut comps = Components::new(nodes);
    for &(u, v) in &edges {
        comps.union(u as u32, v as u32);
    }
    connect(&grid, &mut comps, &mut edges);
    edges
}

/// Adds nearest-neighbour links between components until the graph is connected.
fn connect(grid: &Grid, comps: &mut Components, edges: &mut Vec<(u64, u64)>) {
    let n = grid.points.len();
    let cell = 1.0 / grid.side as f64;
    loop {
        let labels: Vec<u32> = (0..n as u32).map(|i| comps.find(i)).collect();
        let largest = (0..n as u32)
            .filter(|&i| labels[i as usize] == i)
            .max_by_key(|&root| (comps.size[root as usize], std::cmp::Reverse(root)))
            .expect("at least two nodes");
        if comps.size[largest as usize] as usize == n {
            return;
        }
        // Group nodes of the other components, component by component.
        let mut others: Vec<u32> = (0..n as u32)
            .filter(|&i| labels[i as usize] != largest)
            .collect();
        others.sort_by_key(|&i| labels[i as usize]);
        let mut links = Vec::new();
        for group in others.chunk_by(|&a, &b| labels[a as usize] == labels[b as usize]) {
            let own = labels[group[0] as usize];
            let mut best = (f64::INFINITY, 0usize, 0usize);
            for &i in group {
                let i = i as usize;
                let (cx, cy) = grid.cell_xy(i);
                for k in 0..grid.side {
                    // Points k + 1 rings out are at least k cells away.
                    let reach = (k.saturating_sub(1)) as f64 * cell;
                    if reach * reach >= best.0 {
                        break;
                    }
                    grid.ring(cx, cy, k, |j| {
                        if labels[j] != own {
                            let d = grid.dist2(i, j);
                            if d < best.0 {
                                best = (d, i, j);
                            }
                        }
                    });
                }
            }
            links.push((best.1 as u64, best.2 as u64));
        }
        for (a, b) in links {
            comps.union(a as u32, b as u32);
            edges.push((a.min(b), a.max(b)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_edges_normalises_and_indexes() {
        let t = Topology::from_edges(4, vec![(2, 0), (0, 2), (1, 1), (3, 2), (0, 1)]);
        assert_eq!(t.edges, vec![(0, 1), (0, 2), (2, 3)]);
        assert_eq!(t.neighbours(0), &[1, 2]);
        assert_eq!(t.neighbours(2), &[0, 3]);
        assert_eq!(t.neighbours(9), &[] as &[u64]);
        assert!(t.is_connected());
        assert!(!Topology::from_edges(3, vec![(0, 1)]).is_connected());
    }

    #[test]
    fn ring_visits_each_cell_once() {
        let points: Vec<(f64, f64)> = (0..100)
            .map(|i| ((i % 10) as f64 / 10.0 + 0.05, (i / 10) as f64 / 10.0 + 0.05))
            .collect();
        let grid = Grid::new(points, 0.1);
        assert_eq!(grid.side, 10);
        let mut seen = vec![0; 100];
        for k in 0..10 {
            grid.ring(4, 6, k, |j| seen[j] += 1);
        }
        assert!(seen.iter().all(|&c| c == 1), "{seen:?}");
        let mut ring1 = Vec::new();
        grid.ring(4, 6, 1, |j| ring1.push(j));
        assert_eq!(ring1.len(), 8);
    }

    #[test]
    fn sparse_geometric_graphs_still_connect() {
        let t = Topology::generate(TopologyKind::Geometric, 3000, 0.3, 5);
        assert!(t.is_connected());
        let t = Topology::generate(TopologyKind::Geometric, 10, 9.0, 5);
        assert_eq!(t.edges.len(), 45);
    }
}
