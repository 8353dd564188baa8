package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
)

func TestCheckKey_ChangesWithTheFunctionsAndTheirPackagesFiles(t *testing.T) {
	root := t.TempDir()
	pkg := filepath.Join(root, "nodes")
	if err := os.MkdirAll(filepath.Join(pkg, "__pycache__"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(pkg, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("__init__.py", "")
	write("steps.py", "def f(df, *, start_date, end_date):\n    return df\n")
	p := &plan.Pipeline{Nodes: []*plan.Node{
		{Name: "a", Kind: plan.KindPython, Module: "nodes.steps", Function: "f", Inputs: []string{"x"}},
		{Name: "b", Kind: plan.KindSQL, SQL: "SELECT 1"},
	}}
	first, python := checkKey(p, []string{root})
	if !python {
		t.Fatal("a pipeline with a Python node reported none")
	}
	if again, _ := checkKey(p, []string{root}); again != first {
		t.Error("the same pipeline and files gave another key")
	}
	write("__pycache__/steps.cpython-311.pyc", "compiled")
	if k, _ := checkKey(p, []string{root}); k != first {
		t.Error("a compiled file changed the key")
	}

	// The function's module changes on disk: a new key, as the workers
	// import it again.
	later := time.Now().Add(2 * time.Second)
	write("steps.py", "def f(df, *, start_date, end_date):\n    return df.limit(1)\n")
	if err := os.Chtimes(filepath.Join(pkg, "steps.py"), later, later); err != nil {
		t.Fatal(err)
	}
	changed, _ := checkKey(p, []string{root})
	if changed == first {
		t.Error("editing the function's module kept the key")
	}
	// Another function, another input count, another allowed prefix.
	p.Nodes[0].Inputs = nil
	if k, _ := checkKey(p, []string{root}); k == changed {
		t.Error("a node with another number of inputs kept the key")
	}
	// The same inputs on a streaming node: a streaming node's function may
	// be in tauro's form, a batch node's not.
	p.Nodes[0].Inputs = []string{"x"}
	batch, _ := checkKey(p, []string{root})
	p.Nodes[0].Stream = &plan.StreamSpec{Sources: []plan.StreamSource{{Key: "x"}}}
	if k, _ := checkKey(p, []string{root}); k == batch {
		t.Error("a node becoming streaming kept the key")
	}
	p.Nodes[0].Stream, p.Nodes[0].Inputs = nil, nil
	p.Settings.AllowedModulePrefixes = []string{"nodes"}
	if k, _ := checkKey(p, []string{root}); k == changed {
		t.Error("other allowed module prefixes kept the key")
	}
	if _, python := checkKey(&plan.Pipeline{Nodes: []*plan.Node{{Name: "b", Kind: plan.KindSQL}}}, []string{root}); python {
		t.Error("an all-SQL pipeline reported Python nodes")
	}
}

func TestCheckKey_AForeachBatchFunctionIsCheckedAndKeyedEvenUnderASQLNode(t *testing.T) {
	root := t.TempDir()
	sink := &plan.BatchFunction{Module: "sinks.merge", Function: "upsert"}
	p := &plan.Pipeline{Nodes: []*plan.Node{{Name: "s", Kind: plan.KindSQL, SQL: "SELECT * FROM events",
		Stream: &plan.StreamSpec{Sink: plan.StreamSink{Format: "foreachbatch", BatchFunction: sink}}}}}
	first, python := checkKey(p, []string{root})
	if !python {
		t.Fatal("a pipeline whose only Python is a foreachBatch function reported none to check")
	}
	if err := os.MkdirAll(filepath.Join(root, "sinks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sinks", "merge.py"), []byte("def upsert(df, batch_id):\n    pass\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	written, _ := checkKey(p, []string{root})
	if written == first {
		t.Error("writing the batch function's package kept the key")
	}
	sink.Function = "upsert_all"
	if k, _ := checkKey(p, []string{root}); k == written {
		t.Error("another batch function kept the key")
	}
}
