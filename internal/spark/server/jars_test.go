package server

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeVenv makes a venv layout: pyvenv.cfg, bin/python linking out of the
// venv (as a real one does), pyspark under site-packages and jars.
func fakeVenv(t *testing.T, jars ...string) (venv, python, sparkHome string) {
	t.Helper()
	venv = t.TempDir()
	python = filepath.Join(venv, "bin", "python")
	sparkHome = filepath.Join(venv, "lib", "python3.12", "site-packages", "pyspark")
	for _, d := range []string{filepath.Dir(python), sparkHome, filepath.Join(venv, JarsDirName)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(venv, "pyvenv.cfg"), []byte("home = /usr/bin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "python3")
	if err := os.WriteFile(outside, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, python); err != nil {
		t.Fatal(err)
	}
	for _, j := range jars {
		if err := os.WriteFile(filepath.Join(venv, JarsDirName, j), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return venv, python, sparkHome
}

func TestResolveJars_FindsTheVenvsSparkJarsFromThePythonOrTheSparkHome(t *testing.T) {
	venv, python, home := fakeVenv(t, "spark-avro_2.13-4.2.0.jar", "delta-spark_4.2_2.13-4.4.0.jar", "notes.txt")
	want := []string{
		filepath.Join(venv, JarsDirName, "delta-spark_4.2_2.13-4.4.0.jar"),
		filepath.Join(venv, JarsDirName, "spark-avro_2.13-4.2.0.jar"),
	}
	for _, c := range []struct {
		name string
		cfg  Config
		home string
	}{
		{"from the interpreter", Config{Python: python}, "/elsewhere/pyspark"},
		{"from the Spark home", Config{Python: "/usr/bin/python3"}, home},
		{"from JarsDir", Config{JarsDir: filepath.Join(venv, JarsDirName)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			jars, dir, err := resolveJars(c.cfg, c.home)
			if err != nil || !slices.Equal(jars, want) || dir != filepath.Join(venv, JarsDirName) {
				t.Errorf("resolveJars = %v, %q, %v; want %v in %s", jars, dir, err, want, filepath.Join(venv, JarsDirName))
			}
		})
	}
}

func TestResolveJars_NoVenvOrEmptyListMeansNoJars(t *testing.T) {
	_, python, home := fakeVenv(t, "delta-spark_4.2_2.13-4.4.0.jar")
	if jars, dir, err := resolveJars(Config{Python: "/usr/bin/python3"}, t.TempDir()); err != nil || jars != nil || dir != "" {
		t.Errorf("outside a venv: %v, %q, %v; want nothing", jars, dir, err)
	}
	if jars, _, err := resolveJars(Config{Python: python, Jars: []string{}}, home); err != nil || len(jars) != 0 {
		t.Errorf("Jars: []string{}: %v, %v; want none", jars, err)
	}
	if _, _, err := resolveJars(Config{Jars: []string{filepath.Join(t.TempDir(), "missing.jar")}}, home); err == nil {
		t.Error("a missing jar named in Jars is accepted")
	}
	if _, _, err := resolveJars(Config{Jars: []string{"/tmp/a,b.jar"}}, home); err == nil || !strings.Contains(err.Error(), "comma") {
		t.Errorf("a jar path with a comma: %v, want an error naming the comma", err)
	}
}

func TestArgs_PassesJarsAndConfiguresDeltaUnlessTheUserOverrides(t *testing.T) {
	dir := t.TempDir()
	delta := []string{"/j/delta-spark_4.2_2.13-4.4.0.jar", "/j/delta-storage-4.4.0.jar"}
	cases := []struct {
		name      string
		jars      []string
		conf      map[string]string
		wantJars  string
		wantConf  []string
		wantNoKey string
	}{
		{name: "no jars", wantNoKey: "spark.sql.extensions", wantConf: []string{
			"spark.plugins=" + ConnectPlugin,
			"spark.sql.artifact.isolation.enabled=false",
			"spark.sql.artifact.isolation.alwaysApplyClassloader=false",
		}},
		{name: "user plugins and isolation", conf: map[string]string{"spark.plugins": "com.example.Plugin", "spark.sql.artifact.isolation.enabled": "true"},
			wantNoKey: "spark.sql.extensions", wantConf: []string{
				"spark.plugins=" + ConnectPlugin + ",com.example.Plugin",
				"spark.sql.artifact.isolation.enabled=true",
			}},
		{name: "the Connect plugin named by the user", conf: map[string]string{"spark.plugins": "com.example.Plugin," + ConnectPlugin},
			wantNoKey: "spark.sql.extensions", wantConf: []string{"spark.plugins=com.example.Plugin," + ConnectPlugin}},
		{name: "avro only", jars: []string{"/j/spark-avro_2.13-4.2.0.jar"}, wantJars: "/j/spark-avro_2.13-4.2.0.jar", wantNoKey: "spark.sql.extensions"},
		{name: "delta", jars: delta, wantJars: strings.Join(delta, ","), wantConf: []string{
			"spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
			"spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
			"spark.sql.legacy.parameterSubstitution.constantsOnly=true",
		}},
		{name: "user conf wins", jars: delta, conf: map[string]string{"spark.sql.extensions": "com.example.Ext"}, wantJars: strings.Join(delta, ","), wantConf: []string{
			"spark.sql.extensions=com.example.Ext",
			"spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &Server{cfg: Config{Conf: c.conf}, jars: c.jars, logPath: filepath.Join(dir, "connect.log")}
			driver := filepath.Join(dir, "connect_driver.py")
			args := s.args(4040, filepath.Join(dir, "connect.properties"), driver)
			i := slices.Index(args, "--jars")
			switch {
			case c.wantJars == "" && i >= 0:
				t.Errorf("--jars passed without jars: %v", args)
			case c.wantJars != "" && (i < 0 || args[i+1] != c.wantJars):
				t.Errorf("args %v lack --jars %s", args, c.wantJars)
			}
			if args[len(args)-1] != driver {
				t.Errorf("the driver script is not last: %v", args)
			}
			for _, kv := range c.wantConf {
				if !slices.Contains(args, kv) {
					t.Errorf("args lack --conf %s: %v", kv, args)
				}
			}
			if c.wantNoKey != "" && slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, c.wantNoKey+"=") }) {
				t.Errorf("args set %s: %v", c.wantNoKey, args)
			}
		})
	}
}

func TestArgs_KeepTheTokenOffTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	s := &Server{cfg: Config{Token: "sekrit", Conf: map[string]string{tokenConf: "sekrit-too"}}, logPath: filepath.Join(dir, "connect.log")}
	props := filepath.Join(dir, "connect.properties")
	args := s.args(4040, props, filepath.Join(dir, "connect_driver.py"))
	if i := slices.Index(args, "--properties-file"); i < 0 || args[i+1] != props {
		t.Errorf("args %v lack --properties-file %s", args, props)
	}
	for _, a := range args {
		if strings.Contains(a, "sekrit") || strings.Contains(a, tokenConf) {
			t.Errorf("the command line holds the token: %v", args)
		}
	}
}

func TestWriteSecretConf_OnlyTheOwnerCanReadIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "connect.properties")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSecretConf(path, map[string]string{tokenConf: "abc123"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != tokenConf+"=abc123\n" {
		t.Errorf("file holds %q", b)
	}
}
