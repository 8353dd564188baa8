package architecture

import (
	"strings"
	"testing"
)

// crossings are the only imports allowed between the two backend folders
// internal/spark and internal/streaming, each with its reason: all point
// from streaming to spark. Everything else that crosses, in product code,
// fails the test: an arrow back would make the folders one tangle.
var crossings = map[[2]string]string{
	{"internal/streaming", "internal/spark/connect"}: "a streaming query runs in a Spark Connect session, and streaming follows it through the session's calls",
	{"internal/streaming", "internal/spark/backend"}: "streaming is what the Spark backend follows its streaming queries with (sparkbackend.Streams, handed over by execd)",
}

func TestBackends_SparkAndStreamingMeetOnlyWhereAllowed(t *testing.T) {
	root := repoRoot(t)
	pkgs := goList(t, root, "-f", "{{.ImportPath}}:{{join .Imports \",\"}}", "./internal/spark/...", "./internal/streaming/...")
	folder := func(p string) string {
		switch {
		case strings.HasPrefix(p, "internal/spark/"):
			return "internal/spark"
		case p == "internal/streaming" || strings.HasPrefix(p, "internal/streaming/"):
			return "internal/streaming"
		}
		return ""
	}
	for _, line := range pkgs {
		pkg, imports, _ := strings.Cut(line, ":")
		from := strings.TrimPrefix(pkg, module+"/")
		for _, imp := range strings.Split(imports, ",") {
			to, ours := strings.CutPrefix(imp, module+"/")
			if !ours || folder(to) == "" || folder(to) == folder(from) {
				continue
			}
			if _, ok := crossings[[2]string{from, to}]; !ok {
				t.Errorf("%s imports %s: a backend folder may reach into the other only as listed in crossings", from, to)
			}
		}
	}
}
