package plan

// The graph algorithms below are iterative on purpose: a pipeline is user
// input, and a 100,000-node chain must not exhaust the goroutine stack.
// Vertices are declaration indexes, so "smallest index" means "declared
// first" and makes every choice deterministic.

// dag is a dependency graph in compressed form: the dependencies of v are
// adj[start[v]:start[v+1]], sorted by index and without duplicates.
type dag struct {
	start []int32
	adj   []int32
}

func (g *dag) len() int { return len(g.start) - 1 }

func (g *dag) deps(v int32) []int32 { return g.adj[g.start[v]:g.start[v+1]] }

// reverse returns the graph of dependents (v -> the nodes depending on v),
// each list again sorted by index.
func (g *dag) reverse() *dag {
	n := g.len()
	r := &dag{start: make([]int32, n+1), adj: make([]int32, len(g.adj))}
	for _, d := range g.adj {
		r.start[d+1]++
	}
	for i := 1; i <= n; i++ {
		r.start[i] += r.start[i-1]
	}
	fill := make([]int32, n)
	copy(fill, r.start[:n])
	for v := range int32(n) {
		for _, d := range g.deps(v) {
			r.adj[fill[d]] = v
			fill[d]++
		}
	}
	return r
}

// minHeap is a binary heap of vertex indexes; Kahn's ready set.
type minHeap []int32

func (h *minHeap) push(v int32) {
	*h = append(*h, v)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p] <= s[i] {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *minHeap) pop() int32 {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(s) && s[l] < s[m] {
			m = l
		}
		if r := l + 1; r < len(s) && s[r] < s[m] {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// topoOrder is Kahn's algorithm with the ready set ordered by declaration:
// of all nodes whose dependencies are done, the one declared first comes
// next. The order is therefore the same on every run. It returns fewer than
// g.len() vertices when the graph has a cycle.
func topoOrder(g *dag, rev *dag) []int32 {
	n := g.len()
	indeg := make([]int32, n)
	var ready minHeap
	for v := range int32(n) {
		indeg[v] = g.start[v+1] - g.start[v]
		if indeg[v] == 0 {
			ready = append(ready, v) // ascending, so already a heap
		}
	}
	order := make([]int32, 0, n)
	for len(ready) > 0 {
		v := ready.pop()
		order = append(order, v)
		for _, w := range rev.deps(v) {
			indeg[w]--
			if indeg[w] == 0 {
				ready.push(w)
			}
		}
	}
	return order
}

// cycles finds the dependency cycles among the vertices not in a complete
// topological order: one cycle per strongly connected component, each
// starting at the component's first-declared vertex and following
// "depends on" edges back to it (the shortest such cycle). Components come
// in the order of their first-declared vertex.
func cycles(g *dag, ordered []int32) [][]int32 {
	n := g.len()
	done := make([]bool, n)
	for _, v := range ordered {
		done[v] = true
	}
	comp := sccs(g, done)

	// Group by component, remembering each component's smallest vertex.
	var out [][]int32
	seen := make(map[int32]bool)
	parent := make([]int32, n)
	for i := range parent {
		parent[i] = -1
	}
	for v := range int32(n) {
		c := comp[v]
		if c < 0 || seen[c] {
			continue
		}
		seen[c] = true // v is the first-declared vertex of component c
		if cyc := shortestCycle(g, comp, parent, v); cyc != nil {
			out = append(out, cyc)
		}
	}
	return out
}

// shortestCycle searches breadth-first from s, inside s's component, for a
// path of dependencies leading back to s.
func shortestCycle(g *dag, comp []int32, parent []int32, s int32) []int32 {
	c := comp[s]
	for _, d := range g.deps(s) {
		if d == s {
			return []int32{s, s}
		}
	}
	queue := []int32{s}
	parent[s] = s
	visited := []int32{s}
	defer func() {
		for _, v := range visited {
			parent[v] = -1
		}
	}()
	for head := 0; head < len(queue); head++ {
		u := queue[head]
		for _, d := range g.deps(u) {
			if comp[d] != c {
				continue
			}
			if d == s {
				path := []int32{s}
				for x := u; x != s; x = parent[x] {
					path = append(path, x)
				}
				// path is s, u, parent(u)...; the walk went s -> ... -> u.
				for i, j := 1, len(path)-1; i < j; i, j = i+1, j-1 {
					path[i], path[j] = path[j], path[i]
				}
				return append(path, s)
			}
			if parent[d] == -1 {
				parent[d] = u
				visited = append(visited, d)
				queue = append(queue, d)
			}
		}
	}
	return nil // a lone vertex without a self-loop: downstream of a cycle
}

// sccs labels the strongly connected components of the vertices not marked
// skip (Tarjan's algorithm, with an explicit stack). Skipped vertices get -1.
func sccs(g *dag, skip []bool) []int32 {
	n := g.len()
	const unvisited = -1
	index := make([]int32, n)
	low := make([]int32, n)
	comp := make([]int32, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = unvisited
		comp[i] = -1
	}
	type frame struct{ v, next int32 }
	var (
		calls   []frame
		stack   []int32
		counter int32
		ncomp   int32
	)
	for root := range int32(n) {
		if skip[root] || index[root] != unvisited {
			continue
		}
		calls = append(calls, frame{root, 0})
		index[root], low[root] = counter, counter
		counter++
		stack = append(stack, root)
		onStack[root] = true
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			deps := g.deps(f.v)
			if int(f.next) < len(deps) {
				w := deps[f.next]
				f.next++
				if skip[w] {
					continue
				}
				if index[w] == unvisited {
					index[w], low[w] = counter, counter
					counter++
					stack = append(stack, w)
					onStack[w] = true
					calls = append(calls, frame{w, 0})
				} else if onStack[w] && index[w] < low[f.v] {
					low[f.v] = index[w]
				}
				continue
			}
			v := f.v
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				if p := calls[len(calls)-1].v; low[v] < low[p] {
					low[p] = low[v]
				}
			}
			if low[v] == index[v] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = ncomp
					if w == v {
						break
					}
				}
				ncomp++
			}
		}
	}
	return comp
}

// levels gives each vertex the length of its longest dependency chain
// (0 for a vertex without dependencies), visiting vertices in order.
func levels(g *dag, order []int32) []int32 {
	lv := make([]int32, g.len())
	for _, v := range order {
		for _, d := range g.deps(v) {
			if lv[d]+1 > lv[v] {
				lv[v] = lv[d] + 1
			}
		}
	}
	return lv
}

// criticalPath is a longest dependency chain: it ends at the first-declared
// vertex of the deepest level and, walking back, always takes the
// first-declared dependency one level up.
func criticalPath(g *dag, lv []int32) []int32 {
	if g.len() == 0 {
		return nil
	}
	end := int32(0)
	for v := range int32(g.len()) {
		if lv[v] > lv[end] {
			end = v
		}
	}
	path := make([]int32, lv[end]+1)
	path[len(path)-1] = end
	v := end
	for i := len(path) - 2; i >= 0; i-- {
		for _, d := range g.deps(v) {
			if lv[d] == lv[v]-1 {
				v = d
				break
			}
		}
		path[i] = v
	}
	return path
}

// closure marks every vertex reachable from the marked ones along g's edges
// (dependencies for upstream, dependents for downstream).
func closure(g *dag, from []int32, mark []bool) {
	queue := append([]int32(nil), from...)
	for head := 0; head < len(queue); head++ {
		for _, d := range g.deps(queue[head]) {
			if !mark[d] {
				mark[d] = true
				queue = append(queue, d)
			}
		}
	}
}
