package server

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// JarsDirName is the folder of the project venv that holds the jars the
// embedded server adds to pyspark's own: Delta Lake and Avro. `make venv`
// fills it once, from Maven's cache, so no server start downloads anything.
const JarsDirName = "spark-jars"

// deltaConf is set when Delta Lake's jar is on the classpath. The catalog
// makes spark_catalog create and read Delta tables; the extension adds
// Delta's SQL and is required by its writer. Its SQL parser drops the
// parameters of parameterized queries on Spark 4.1+ (delta-io/delta#7640),
// so parameters are bound by the analyzer instead, as in Spark 4.0.
//
// Delta rebuilds a table's state from its log before every write to an
// existing table, in 50 tasks by default: seconds per write on a machine of
// two cores for a table of a few files. The embedded server is one local
// machine, so it uses a few.
var deltaConf = map[string]string{
	"spark.sql.extensions":                                 "io.delta.sql.DeltaSparkSessionExtension",
	"spark.sql.catalog.spark_catalog":                      "org.apache.spark.sql.delta.catalog.DeltaCatalog",
	"spark.sql.legacy.parameterSubstitution.constantsOnly": "true",
	"spark.databricks.delta.snapshotPartitions":            "4",
}

// resolveJars returns the jars the server runs with and the folder they
// were found in ("" when cfg.Jars named them).
func resolveJars(cfg Config, sparkHome string) ([]string, string, error) {
	if cfg.Jars != nil {
		for _, j := range cfg.Jars {
			if err := checkJar(j); err != nil {
				return nil, "", err
			}
		}
		return slices.Clone(cfg.Jars), "", nil
	}
	dir := cfg.JarsDir
	if dir == "" {
		dir = venvJarsDir(cfg.Python, sparkHome)
	}
	if dir == "" {
		return nil, "", nil
	}
	jars, err := filepath.Glob(filepath.Join(dir, "*.jar"))
	if err != nil {
		return nil, dir, fmt.Errorf("sparkserver: list the jars in %s: %w", dir, err)
	}
	slices.Sort(jars)
	for _, j := range jars {
		if err := checkJar(j); err != nil {
			return nil, dir, err
		}
	}
	return jars, dir, nil
}

func checkJar(path string) error {
	// spark-submit takes the jars as one comma-separated list.
	if strings.Contains(path, ",") {
		return fmt.Errorf("sparkserver: jar path %q contains a comma, which spark-submit --jars cannot take", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("sparkserver: jar %s: %w", path, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("sparkserver: jar %s is a directory", path)
	}
	return nil
}

// venvJarsDir finds the spark-jars folder of the venv that python belongs
// to, or failing that of the venv that holds sparkHome (pyspark installed in
// a venv lives under <venv>/lib/pythonX.Y/site-packages). A venv is a folder
// with pyvenv.cfg; the interpreter is not resolved through its symlink,
// which leads out of the venv.
func venvJarsDir(python, sparkHome string) string {
	if python != "" {
		if !strings.ContainsRune(python, filepath.Separator) {
			python = lookPath(python)
		}
		if python != "" {
			if abs, err := filepath.Abs(python); err == nil {
				if venv := filepath.Dir(filepath.Dir(abs)); isVenv(venv) {
					return filepath.Join(venv, JarsDirName)
				}
			}
		}
	}
	if sparkHome == "" {
		return ""
	}
	for d := filepath.Clean(sparkHome); ; d = filepath.Dir(d) {
		if isVenv(d) {
			return filepath.Join(d, JarsDirName)
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

func lookPath(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

func isVenv(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "pyvenv.cfg"))
	return err == nil && !fi.IsDir()
}

// HasDelta reports whether jars hold Delta Lake's Spark jar.
func HasDelta(jars []string) bool {
	return slices.ContainsFunc(jars, func(j string) bool {
		return strings.HasPrefix(filepath.Base(j), "delta-spark_")
	})
}

// HasAvro reports whether jars hold Spark's Avro data source.
func HasAvro(jars []string) bool {
	return slices.ContainsFunc(jars, func(j string) bool {
		return strings.HasPrefix(filepath.Base(j), "spark-avro_")
	})
}

func logJars(log *slog.Logger, cfg Config, jars []string, dir string) {
	switch {
	case len(jars) > 0:
		log.Info("Spark Connect server jars", "dir", dir, "count", len(jars), "delta", HasDelta(jars), "avro", HasAvro(jars))
	case cfg.Jars != nil:
		log.Info("Spark Connect server runs without extra jars: Delta Lake and Avro are unavailable")
	case dir == "":
		log.Warn("no venv beside the Python interpreter, so no Delta Lake or Avro jars: Delta and Avro inputs and outputs will fail; run 'make venv'",
			"python", cfg.Python)
	default:
		log.Warn("no Delta Lake or Avro jars: Delta and Avro inputs and outputs will fail; run 'make venv' to fetch them",
			"dir", dir)
	}
}
