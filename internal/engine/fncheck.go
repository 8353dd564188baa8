package engine

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
)

// Checking a pipeline's Python functions asks a worker to import them: a
// round trip that a run would wait for before its first node, and one that
// waits for a free worker. A check that found nothing wrong is remembered
// by what it depended on: the functions asked about (module, name, number
// of inputs, streaming or not; foreachBatch functions too), the modules a
// node may come from, and the size and change time of every file of the
// packages those modules are in, under the folders node code is imported
// from. Change any of them and the next run
// is checked again, as the workers import changed code again. Code
// installed outside those folders is not looked at.

// checked remembers the keys of checks that passed.
type checked struct {
	mu   sync.Mutex
	keys map[[32]byte]bool
}

// maxChecked bounds the memory: past it the cache starts over.
const maxChecked = 1024

func (c *checked) has(k [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys[k]
}

func (c *checked) add(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil || len(c.keys) >= maxChecked {
		c.keys = map[[32]byte]bool{}
	}
	c.keys[k] = true
}

// checkKey is what a check of p's functions depends on, and whether p has
// any Python function at all.
func checkKey(p *plan.Pipeline, roots []string) ([32]byte, bool) {
	h := sha256.New()
	tops := map[string]bool{}
	python := false
	for _, n := range p.Nodes {
		if n.Stream != nil && n.Stream.Sink.BatchFunction != nil {
			bf := n.Stream.Sink.BatchFunction
			python = true
			fmt.Fprintf(h, "batch fn %q %q %q\n", n.Name, bf.Module, bf.Function)
			top, _, _ := strings.Cut(bf.Module, ".")
			tops[top] = true
		}
		if n.Kind != plan.KindPython {
			continue
		}
		python = true
		fmt.Fprintf(h, "fn %q %q %q %d %t\n", n.Name, n.Module, n.Function, len(n.FunctionInputs()), n.Stream != nil)
		top, _, _ := strings.Cut(n.Module, ".")
		tops[top] = true
	}
	fmt.Fprintf(h, "prefixes %q\n", p.Settings.AllowedModulePrefixes)
	for _, root := range roots {
		for _, top := range slices.Sorted(maps.Keys(tops)) {
			stampTree(h, filepath.Join(root, top))
			stampTree(h, filepath.Join(root, top+".py"))
		}
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k, python
}

// stampTree writes the path, size and change time of every file under path
// (or of path itself), or that there is none.
func stampTree(w io.Writer, path string) {
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(w, "missing %q\n", p)
			return nil
		}
		if d.IsDir() {
			if d.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		fmt.Fprintf(w, "file %q %d %d\n", p, info.Size(), info.ModTime().UnixNano())
		return nil
	})
}

// codeRoots are the folders a project's node code is imported from.
func codeRoots(pr Project) []string {
	if len(pr.CodeRoots) > 0 {
		return pr.CodeRoots
	}
	if dir, err := filepath.Abs(pr.Dir); err == nil {
		return []string{dir}
	}
	return []string{pr.Dir}
}
