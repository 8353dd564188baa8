package server

import (
	"fmt"
	"os"
	"path/filepath"
)

// linkHomeWithoutPython makes dir a Spark home that is home without its
// python/ folder: a symbolic link to each of home's other entries, made
// afresh. The server runs with it as SPARK_HOME; home is the pyspark of
// the server's Python (Config.SparkHome).
//
// Spark puts $SPARK_HOME/python/lib/pyspark.zip first on the PYTHONPATH
// of every Python worker it starts. Python keeps no bytecode for modules
// imported from a zip, so each worker compiled the pyspark it imports: a
// foreachBatch worker (pyspark.sql.connect with pandas, pyarrow and grpc)
// needed about 2.7 s of CPU instead of 1.2 s. Spark waits a fixed 10 s for
// that worker to start and connect back (PythonWorkerFactory's
// createSimpleWorker in Spark 4.2, no setting changes it; a foreachBatch
// query starts a new one each time, without the daemon), and on a loaded
// machine a restarted query failed with "Python worker failed to connect
// back". Without the zip the worker imports its interpreter's pyspark,
// the same package, from its bytecode cache.
func linkHomeWithoutPython(home, dir string) error {
	if err := os.RemoveAll(dir); err != nil { // removes the links, not what they point to
		return fmt.Errorf("sparkserver: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sparkserver: %w", err)
	}
	entries, err := os.ReadDir(home)
	if err != nil {
		return fmt.Errorf("sparkserver: read the Spark home: %w", err)
	}
	for _, e := range entries {
		if e.Name() == "python" {
			continue
		}
		if err := os.Symlink(filepath.Join(home, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("sparkserver: %w", err)
		}
	}
	return nil
}
