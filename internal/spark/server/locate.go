package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/jvm"
)

// MinJavaVersion is the oldest Java that Spark 4 runs on.
const MinJavaVersion = 17

// ErrJavaMissing and ErrSparkMissing say that the machine lacks what the
// embedded server needs, as opposed to a server that failed to start.
var (
	ErrJavaMissing  = jvm.ErrMissing
	ErrSparkMissing = errors.New("pyspark not found")
)

// FindSparkHome returns the directory of the pyspark package that python
// imports; that directory is a complete Spark distribution (bin/, jars/).
func FindSparkHome(ctx context.Context, python string) (string, error) {
	if python == "" {
		python = "python3"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s cannot import pyspark (run 'make venv' or set the Spark home): %v: %s",
			ErrSparkMissing, python, err, lastLine(stderr.String()))
	}
	home := strings.TrimSpace(string(out))
	return home, checkSparkHome(home)
}

func checkSparkHome(home string) error {
	submit := filepath.Join(home, "bin", "spark-submit")
	if fi, err := os.Stat(submit); err != nil || fi.IsDir() {
		return fmt.Errorf("%w: %s has no bin/spark-submit; point the Spark home at the pyspark package directory", ErrSparkMissing, home)
	}
	matches, _ := filepath.Glob(filepath.Join(home, "jars", "spark-connect_*.jar"))
	if len(matches) == 0 {
		return fmt.Errorf("%w: %s/jars has no spark-connect jar; install pyspark 4 or later", ErrSparkMissing, home)
	}
	return nil
}

// CheckJava returns the java binary of javaHome (or PATH when empty) when
// it is Java 17 or later, the oldest Spark 4 runs on.
func CheckJava(ctx context.Context, javaHome string) (string, error) {
	return jvm.Find(ctx, javaHome, MinJavaVersion)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
