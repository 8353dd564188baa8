package backend

import (
	"reflect"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
)

// a is cached and read by b and c; a result made twice (a retry) is
// released by name. The last reader releases it, unless it is the run's
// last node to succeed: then the session's close does.
func TestToRelease_TheLastReaderReleasesUnlessNothingIsLeftToRun(t *testing.T) {
	newRun := func(gen int) (*runExec, []*plan.Node) {
		a := &plan.Node{Name: "a"}
		b := &plan.Node{Name: "b", Dependencies: []string{"a"}}
		c := &plan.Node{Name: "c", Dependencies: []string{"a"}}
		d := &plan.Node{Name: "d"}
		r := &runExec{
			readers:    map[string]int{"a": 2},
			cached:     map[string]string{"a": "global_temp.v_a"},
			gen:        map[string]int{"a": gen},
			unfinished: map[string]bool{"a": true, "b": true, "c": true, "d": true},
		}
		return r, []*plan.Node{a, b, c, d}
	}

	r, n := newRun(1)
	for _, done := range n[:2] { // a, b: c still reads a
		if got := r.toRelease(done); got != nil {
			t.Errorf("%s released %v; c still reads a", done.Name, got)
		}
	}
	if got, want := r.toRelease(n[2]), []cachedResult{{"global_temp.v_a", false}}; !reflect.DeepEqual(got, want) {
		t.Errorf("c, a's last reader, with d still to run, released %v; want %v", got, want)
	}

	r, n = newRun(2)
	for _, done := range []*plan.Node{n[0], n[3], n[1]} { // d too: c is the last node
		r.toRelease(done)
	}
	if got := r.toRelease(n[2]); got != nil {
		t.Errorf("c, the run's last node, released %v; the session's close does", got)
	}
	if _, ok := r.cached["a"]; ok {
		t.Error("a is still recorded as cached after its last reader")
	}

	r, n = newRun(2)
	for _, done := range n[:2] {
		r.toRelease(done)
	}
	if got := r.toRelease(n[2]); len(got) != 1 || !got[0].remade {
		t.Errorf("a result made twice was released as %v; want it released by name (remade)", got)
	}
}
