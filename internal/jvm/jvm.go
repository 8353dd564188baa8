// Package jvm finds a Java runtime and checks that it is new enough: what
// the embedded Spark server and the tests' Kafka broker both start. It
// knows no Spark and no Kafka, so either may use it without knowing the
// other.
package jvm

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrMissing says that the machine has no Java new enough, as opposed to a
// program that failed once started.
var ErrMissing = errors.New("java not found")

var versionRE = regexp.MustCompile(`version "(\d+)(?:\.(\d+))?`)

// Find runs java -version from javaHome (or PATH when empty) and returns
// the java binary when its major version is at least minMajor.
func Find(ctx context.Context, javaHome string, minMajor int) (string, error) {
	java := "java"
	if javaHome != "" {
		java = filepath.Join(javaHome, "bin", "java")
	}
	path, err := exec.LookPath(java)
	if err != nil {
		return "", fmt.Errorf("%w: Java %d+ is needed (install openjdk-%d-jre-headless or set JAVA_HOME): %v",
			ErrMissing, minMajor, minMajor, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: %s -version failed: %v: %s", ErrMissing, path, err, lastLine(string(out)))
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return "", fmt.Errorf("%w: cannot read the version of %s from %q", ErrMissing, path, lastLine(string(out)))
	}
	major, _ := strconv.Atoi(m[1])
	if major == 1 && m[2] != "" { // 1.8 is Java 8
		major, _ = strconv.Atoi(m[2])
	}
	if major < minMajor {
		return "", fmt.Errorf("%w: Java %d+ is needed, %s is Java %d (set JAVA_HOME to a newer JDK)",
			ErrMissing, minMajor, path, major)
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
