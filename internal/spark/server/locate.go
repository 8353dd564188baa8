package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MinJavaVersion is the oldest Java that Spark 4 runs on.
const MinJavaVersion = 17

// ErrJavaMissing and ErrSparkMissing say that the machine lacks what the
// embedded server needs, as opposed to a server that failed to start.
var (
	ErrJavaMissing  = errors.New("java not found")
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

var javaVersionRE = regexp.MustCompile(`version "(\d+)(?:\.(\d+))?`)

// CheckJava runs java -version from javaHome (or PATH when empty) and
// returns the java binary when its major version is at least 17.
func CheckJava(ctx context.Context, javaHome string) (string, error) {
	java := "java"
	if javaHome != "" {
		java = filepath.Join(javaHome, "bin", "java")
	}
	path, err := exec.LookPath(java)
	if err != nil {
		return "", fmt.Errorf("%w: Java %d+ is needed for Spark (install openjdk-%d-jre-headless or set JAVA_HOME): %v",
			ErrJavaMissing, MinJavaVersion, MinJavaVersion, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: %s -version failed: %v: %s", ErrJavaMissing, path, err, lastLine(string(out)))
	}
	m := javaVersionRE.FindStringSubmatch(string(out))
	if m == nil {
		return "", fmt.Errorf("%w: cannot read the version of %s from %q", ErrJavaMissing, path, lastLine(string(out)))
	}
	major, _ := strconv.Atoi(m[1])
	if major == 1 && m[2] != "" { // 1.8 is Java 8
		major, _ = strconv.Atoi(m[2])
	}
	if major < MinJavaVersion {
		return "", fmt.Errorf("%w: Java %d+ is needed for Spark, %s is Java %d (set JAVA_HOME to a newer JDK)",
			ErrJavaMissing, MinJavaVersion, path, major)
	}
	return path, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
