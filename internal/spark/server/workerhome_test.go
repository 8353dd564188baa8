package server

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The server's SPARK_HOME has every entry of the pyspark package but
// python/, whose lib/pyspark.zip Spark would put first on its Python
// workers' path; a later start links the home as it is then.
func TestLinkHomeWithoutPython_LinksEveryEntryButPythonAfresh(t *testing.T) {
	home, dir := t.TempDir(), filepath.Join(t.TempDir(), "home")
	for _, f := range []string{"bin/spark-submit", "jars/spark-connect_2.13-4.2.0.jar", "python/lib/pyspark.zip", "__init__.py", "stale.py"} {
		if err := os.MkdirAll(filepath.Join(home, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := linkHomeWithoutPython(home, dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(home, "stale.py")); err != nil {
		t.Fatal(err)
	}
	if err := linkHomeWithoutPython(home, dir); err != nil {
		t.Fatal(err)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err != nil || target != filepath.Join(home, e.Name()) {
			t.Errorf("%s links to %q (%v), want %s", e.Name(), target, err, filepath.Join(home, e.Name()))
		}
	}
	if want := []string{"__init__.py", "bin", "jars"}; !slices.Equal(names, want) {
		t.Errorf("the linked home holds %v, want %v", names, want)
	}
	if err := checkSparkHome(dir); err != nil {
		t.Errorf("the linked home is not a Spark home: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, "python", "lib", "pyspark.zip")); err != nil {
		t.Errorf("linking the home touched the package itself: %v", err)
	}
}
