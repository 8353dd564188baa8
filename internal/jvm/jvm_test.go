package jvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeJava is a JAVA_HOME whose java prints version as java -version does.
func fakeJava(t *testing.T, version string) string {
	t.Helper()
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho '" + version + "' >&2\n"
	if err := os.WriteFile(filepath.Join(home, "bin", "java"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return home
}

func TestFind_RejectsAnOlderJavaNamingBothVersions(t *testing.T) {
	_, err := Find(context.Background(), fakeJava(t, `openjdk version "11.0.2" 2019-01-15`), 17)
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "Java 17+") || !strings.Contains(err.Error(), "Java 11") {
		t.Fatalf("Find = %v, want ErrMissing naming Java 17+ and the found Java 11", err)
	}
}

func TestFind_ReadsJava8StyleVersions(t *testing.T) {
	_, err := Find(context.Background(), fakeJava(t, `java version "1.8.0_292"`), 17)
	if err == nil || !strings.Contains(err.Error(), "Java 8") {
		t.Fatalf("Find = %v, want a rejection of Java 8", err)
	}
}

func TestFind_AcceptsANewEnoughJava(t *testing.T) {
	home := fakeJava(t, `openjdk version "21.0.4" 2024-07-16`)
	got, err := Find(context.Background(), home, 17)
	if err != nil || got != filepath.Join(home, "bin", "java") {
		t.Fatalf("Find = %q, %v; want %s/bin/java", got, err, home)
	}
}
