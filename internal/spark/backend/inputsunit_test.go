package backend

import (
	"maps"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
)

// An input read by batch Python nodes alone needs only a global view; one a
// SQL or streaming node reads needs its session view too.
func TestReadByPythonAlone_OnlyInputsNoSQLOrStreamingNodeReads(t *testing.T) {
	py := func(name string, keys ...string) *plan.Node {
		n := &plan.Node{Name: name, Kind: plan.KindPython}
		for _, k := range keys {
			n.InputSpecs = append(n.InputSpecs, plan.Input{Key: k})
		}
		return n
	}
	sql := py("s", "mixed")
	sql.Kind = plan.KindSQL
	stream := py("st", "streamed")
	stream.Stream = &plan.StreamSpec{}
	up := py("u", "made")
	up.InputSpecs[0].Producer = "p"
	got := readByPythonAlone([]*plan.Node{py("a", "raw", "mixed"), sql, py("b", "raw", "streamed"), stream, up})
	want := map[string]bool{"raw": true, "mixed": false, "streamed": false}
	if !maps.Equal(got, want) {
		t.Errorf("readByPythonAlone = %v, want %v", got, want)
	}
}
