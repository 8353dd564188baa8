package schedule

import (
	"container/heap"
	"time"
)

// readyQueue holds the nodes that may start, lowest declaration index first,
// which is what makes launch order deterministic.
type readyQueue []*node

func (q readyQueue) Len() int           { return len(q) }
func (q readyQueue) Less(i, j int) bool { return q[i].index < q[j].index }
func (q readyQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *readyQueue) Push(x any)        { *q = append(*q, x.(*node)) }
func (q *readyQueue) Pop() any {
	old := *q
	n := old[len(old)-1]
	*q = old[:len(old)-1]
	return n
}

func (q *readyQueue) push(n *node) { heap.Push(q, n) }
func (q *readyQueue) pop() *node   { return heap.Pop(q).(*node) }

// deadlines holds the next moment something must happen to a node: its
// running attempt times out, or its backoff ends. A node has at most one
// deadline, since it is either running or backing off, so one Clock timer
// armed for the earliest deadline serves the whole run.
type deadlines []*node

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].due.Before(d[j].due) }
func (d deadlines) Swap(i, j int) {
	d[i], d[j] = d[j], d[i]
	d[i].dueIndex, d[j].dueIndex = i, j
}
func (d *deadlines) Push(x any) {
	n := x.(*node)
	n.dueIndex = len(*d)
	*d = append(*d, n)
}
func (d *deadlines) Pop() any {
	old := *d
	n := old[len(old)-1]
	n.dueIndex = -1
	*d = old[:len(old)-1]
	return n
}

// set gives n the deadline at, replacing any it had.
func (d *deadlines) set(n *node, at time.Time) {
	n.due = at
	if n.dueIndex >= 0 {
		heap.Fix(d, n.dueIndex)
		return
	}
	heap.Push(d, n)
}

// clear removes n's deadline, if it has one.
func (d *deadlines) clear(n *node) {
	if n.dueIndex >= 0 {
		heap.Remove(d, n.dueIndex)
	}
}

// next returns the node with the earliest deadline, or nil.
func (d deadlines) next() *node {
	if len(d) == 0 {
		return nil
	}
	return d[0]
}
