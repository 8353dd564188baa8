package main

import (
	"bufio"
	"strings"
	"testing"
)

// A stream as `go test -json` writes it: a passing test, a failing one, two
// skips, a package with no tests, and a build failure.
const stream = `{"Action":"start","Package":"m/a"}
{"Action":"run","Package":"m/a","Test":"TestPasses"}
{"Action":"output","Package":"m/a","Test":"TestPasses","Output":"=== RUN   TestPasses\n"}
{"Action":"output","Package":"m/a","Test":"TestPasses","Output":"    a_test.go:9: chatter of a passing test\n"}
{"Action":"output","Package":"m/a","Test":"TestPasses","Output":"--- PASS: TestPasses (0.00s)\n"}
{"Action":"pass","Package":"m/a","Test":"TestPasses"}
{"Action":"run","Package":"m/a","Test":"TestNeedsSpark"}
{"Action":"output","Package":"m/a","Test":"TestNeedsSpark","Output":"=== RUN   TestNeedsSpark\n"}
{"Action":"output","Package":"m/a","Test":"TestNeedsSpark","Output":"    a_test.go:20: no Spark for integration tests\n"}
{"Action":"output","Package":"m/a","Test":"TestNeedsSpark","Output":"--- SKIP: TestNeedsSpark (0.00s)\n"}
{"Action":"skip","Package":"m/a","Test":"TestNeedsSpark"}
{"Action":"output","Package":"m/a","Output":"PASS\n"}
{"Action":"output","Package":"m/a","Output":"ok  \tm/a\t0.01s\n"}
{"Action":"pass","Package":"m/a"}
{"Action":"run","Package":"m/b","Test":"TestCluster_Sales"}
{"Action":"output","Package":"m/b","Test":"TestCluster_Sales","Output":"    b_test.go:5: needs the test cluster\n"}
{"Action":"skip","Package":"m/b","Test":"TestCluster_Sales"}
{"Action":"run","Package":"m/b","Test":"TestBreaks"}
{"Action":"output","Package":"m/b","Test":"TestBreaks","Output":"=== RUN   TestBreaks\n"}
{"Action":"output","Package":"m/b","Test":"TestBreaks","Output":"    b_test.go:9: want 2, got 3\n"}
{"Action":"output","Package":"m/b","Test":"TestBreaks","Output":"--- FAIL: TestBreaks (0.00s)\n"}
{"Action":"fail","Package":"m/b","Test":"TestBreaks"}
{"Action":"output","Package":"m/b","Output":"FAIL\n"}
{"Action":"output","Package":"m/b","Output":"FAIL\tm/b\t0.02s\n"}
{"Action":"fail","Package":"m/b"}
{"Action":"output","Package":"m/c","Output":"?   \tm/c\t[no test files]\n"}
{"Action":"skip","Package":"m/c"}
{"ImportPath":"m/d [m/d.test]","Action":"build-output","Output":"d_test.go:3:1: syntax error\n"}
{"ImportPath":"m/d [m/d.test]","Action":"build-fail"}
go: a message that is not an event
`

func run(t *testing.T, allowed string, require bool) (string, bool) {
	t.Helper()
	rules, err := parseRules(allowed)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	w := bufio.NewWriter(&out)
	s, err := read(strings.NewReader(stream), w)
	if err != nil {
		t.Fatal(err)
	}
	ok := s.report(w, rules, require, "allowed-skips")
	w.Flush()
	return out.String(), ok
}

func TestRead_PrintsWhatGoTestPrintsWithoutJSON(t *testing.T) {
	out, _ := run(t, "", false)
	for _, want := range []string{
		"ok  \tm/a\t0.01s\n",
		"    b_test.go:9: want 2, got 3\n--- FAIL: TestBreaks (0.00s)\n",
		"FAIL\tm/b\t0.02s\n",
		"?   \tm/c\t[no test files]\n",
		"d_test.go:3:1: syntax error\n",
		"go: a message that is not an event\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"chatter of a passing test", "=== RUN", "PASS\n"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("output has %q, which go test without -json does not print:\n%s", unwanted, out)
		}
	}
}

func TestReport_CountsAndNamesEverySkipWithItsReason(t *testing.T) {
	out, _ := run(t, "", false)
	for _, want := range []string{
		"go test: 1 passed, 1 failed, 2 skipped",
		"m/a TestNeedsSpark: a_test.go:20: no Spark for integration tests",
		"m/b TestCluster_Sales: b_test.go:5: needs the test cluster",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestReport_FailsOnAFailedTest(t *testing.T) {
	if _, ok := run(t, "", false); ok {
		t.Error("a run with a failed test passed")
	}
}

func TestReport_ARequiredSkipFailsAndAnAllowedOneDoesNot(t *testing.T) {
	const allowed = "# comment\nb TestCluster_* make test-cluster runs it\n" +
		"* TestHelperProcess not a test\ncmd/execd TestNeedsCluster make test-cluster runs it\n"
	rules, err := parseRules(allowed)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		skips   []skip
		require bool
		ok      bool
	}{
		{"no skips", nil, true, true},
		{"a skip when not required", []skip{{"m/a", "TestNeedsSpark", "no Spark"}}, false, true},
		{"a required skip", []skip{{"m/a", "TestNeedsSpark", "no Spark"}}, true, false},
		{"an allowed skip", []skip{{"m/b", "TestCluster_Sales", "no cluster"}}, true, true},
		{"the allowed test in another package", []skip{{"m/a", "TestCluster_Sales", "no cluster"}}, true, false},
		{"a package whose name only ends like the allowed one", []skip{{"m/bb", "TestCluster_Sales", ""}}, true, false},
		{"any package's helper", []skip{{"m/x/y", "TestHelperProcess", ""}}, true, true},
		{"a path of two elements", []skip{{"m/cmd/execd", "TestNeedsCluster", ""}}, true, true},
		{"the same last element elsewhere", []skip{{"m/internal/execd", "TestNeedsCluster", ""}}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			s := &summary{passed: 1, skipped: tc.skips}
			if ok := s.report(&out, rules, tc.require, "allowed-skips"); ok != tc.ok {
				t.Errorf("report = %v, want %v:\n%s", ok, tc.ok, out.String())
			}
			if !tc.ok && !strings.Contains(out.String(), "FAIL: 1 skipped test(s) that this run requires") {
				t.Errorf("a failing report does not say why:\n%s", out.String())
			}
		})
	}
}

func TestParseRules_RefusesALineWithoutAReason(t *testing.T) {
	if _, err := parseRules("cmd/execd TestCluster_*\n"); err == nil {
		t.Error("a rule without a reason was accepted")
	}
}
