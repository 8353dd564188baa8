// Command skipcheck reads `go test -json` on stdin and prints what `go test`
// prints without it (each package's ok or FAIL line, the output of failed
// tests, build errors), then how many tests were skipped and which, each
// with its reason.
//
//	go test -json ./... | skipcheck -allowed tools/skipcheck/allowed-skips
//
// With -require, the default when TAURO_REQUIRE_SPARK=1 (as `make test`
// sets it, and as the Spark tests read it), a skip fails the run unless the
// -allowed file lists the test: make test requires every other test to run. It exits 1 when a test failed or a required test
// skipped; go test's own exit status reaches the shell through pipefail.
//
// It lives in tools/, outside the product's module, and uses only the
// standard library.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

func main() {
	allowedFile := flag.String("allowed", "", "the tests that may skip when -require is set, one a line: package, test name pattern, why")
	require := flag.Bool("require", os.Getenv("TAURO_REQUIRE_SPARK") == "1", "fail on any skip the -allowed file does not list (default: TAURO_REQUIRE_SPARK=1)")
	flag.Parse()
	var allowed []rule
	if *allowedFile != "" {
		data, err := os.ReadFile(*allowedFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "skipcheck:", err)
			os.Exit(2)
		}
		if allowed, err = parseRules(string(data)); err != nil {
			fmt.Fprintf(os.Stderr, "skipcheck: %s: %v\n", *allowedFile, err)
			os.Exit(2)
		}
	}
	out := bufio.NewWriter(os.Stdout)
	s, err := read(os.Stdin, out)
	if err != nil {
		out.Flush()
		fmt.Fprintln(os.Stderr, "skipcheck:", err)
		os.Exit(2)
	}
	ok := s.report(out, allowed, *require, *allowedFile)
	out.Flush()
	if !ok {
		os.Exit(1)
	}
}

// rule allows the tests whose package and name match its patterns
// (path.Match) to skip.
type rule struct {
	pkg, test, why string
}

func parseRules(text string) ([]rule, error) {
	var rules []rule
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("line %d: want a package, a test name pattern and why it may skip, got %q", i+1, line)
		}
		for _, p := range f[:2] {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("line %d: pattern %q: %v", i+1, p, err)
			}
		}
		rules = append(rules, rule{pkg: f[0], test: f[1], why: strings.Join(f[2:], " ")})
	}
	return rules, nil
}

// allows reports whether r covers test of pkg, an import path. The file
// names packages without the module path, so r's package pattern is matched
// against as many of the import path's last elements as it has: "cmd/execd"
// against the last two, "*" against the last one (any package).
func (r rule) allows(pkg, test string) bool {
	elems := strings.Split(pkg, "/")
	n := strings.Count(r.pkg, "/") + 1
	if n > len(elems) {
		return false
	}
	if ok, _ := path.Match(r.pkg, strings.Join(elems[len(elems)-n:], "/")); !ok {
		return false
	}
	ok, _ := path.Match(r.test, test)
	return ok
}

// event is one line of `go test -json` (cmd/test2json), build events included.
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

type skip struct {
	pkg, test, reason string
}

type summary struct {
	passed, failed int
	skipped        []skip
	failedPkgs     int
}

// read copies what `go test` would print to w as events arrive, so a long
// run shows each package as it ends, and gathers the counts and skips.
func read(r io.Reader, w *bufio.Writer) (*summary, error) {
	var s summary
	tests := map[[2]string][]string{} // (package, test) -> its output so far
	pkgs := map[string][]string{}     // package -> its own output so far
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(w, "%s\n", line) // not an event: go test's own message
			w.Flush()
			continue
		}
		key := [2]string{e.Package, e.Test}
		switch {
		case e.Action == "build-output":
			fmt.Fprint(w, e.Output)
		case e.Action == "output" && e.Test != "":
			tests[key] = append(tests[key], e.Output)
		case e.Action == "output":
			pkgs[e.Package] = append(pkgs[e.Package], e.Output)
		case e.Test != "" && e.Action == "pass":
			s.passed++
			delete(tests, key)
		case e.Test != "" && e.Action == "skip":
			s.skipped = append(s.skipped, skip{e.Package, e.Test, reason(tests[key])})
			delete(tests, key)
		case e.Test != "" && e.Action == "fail":
			s.failed++
			printLines(w, tests[key])
			delete(tests, key)
		case e.Test == "" && (e.Action == "pass" || e.Action == "skip"):
			// Like go test: a package that passed shows its summary line only.
			for _, l := range pkgs[e.Package] {
				if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "ok\t") || strings.HasPrefix(l, "?") {
					fmt.Fprint(w, l)
				}
			}
			delete(pkgs, e.Package)
		case e.Test == "" && e.Action == "fail":
			s.failedPkgs++
			// Tests that never ended (a panic, a timeout) show what they printed.
			var open [][2]string
			for k := range tests {
				if k[0] == e.Package {
					open = append(open, k)
				}
			}
			sort.Slice(open, func(i, j int) bool { return open[i][1] < open[j][1] })
			for _, k := range open {
				printLines(w, tests[k])
				delete(tests, k)
			}
			printLines(w, pkgs[e.Package])
			delete(pkgs, e.Package)
		}
		if e.Action != "output" {
			w.Flush()
		}
	}
	return &s, sc.Err()
}

// printLines prints a test's output as go test does for a failure, without
// the lines -json adds (=== RUN, PAUSE, CONT, NAME).
func printLines(w io.Writer, lines []string) {
	for _, l := range lines {
		if !strings.HasPrefix(l, "=== ") {
			fmt.Fprint(w, l)
		}
	}
}

// reason is what a skipped test printed, on one line: its t.Skip message.
func reason(lines []string) string {
	var parts []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		parts = append(parts, l)
	}
	return strings.Join(parts, " ")
}

// report prints the counts and the skipped tests, and says whether the run
// may pass: no failure, and under require no skip outside the allowed rules.
func (s *summary) report(w io.Writer, allowed []rule, require bool, allowedFile string) bool {
	fmt.Fprintf(w, "go test: %d passed, %d failed, %d skipped (subtests counted)\n", s.passed, s.failed, len(s.skipped))
	var ok, bad []string
	for _, sk := range s.skipped {
		line := fmt.Sprintf("  %s %s: %s", sk.pkg, sk.test, sk.reason)
		why := ""
		for _, r := range allowed {
			if r.allows(sk.pkg, sk.test) {
				why = r.why
				break
			}
		}
		switch {
		case why != "":
			ok = append(ok, line+" [allowed: "+why+"]")
		case require:
			bad = append(bad, line)
		default:
			ok = append(ok, line)
		}
	}
	if len(ok) > 0 {
		fmt.Fprintln(w, "skipped:")
		fmt.Fprintln(w, strings.Join(ok, "\n"))
	}
	if len(bad) > 0 {
		fmt.Fprintf(w, "FAIL: %d skipped test(s) that this run requires (TAURO_REQUIRE_SPARK=1):\n", len(bad))
		fmt.Fprintln(w, strings.Join(bad, "\n"))
		fmt.Fprintf(w, "make them run here, or list them in %s with the reason they may skip\n", allowedFile)
	}
	return s.failed == 0 && s.failedPkgs == 0 && len(bad) == 0
}
