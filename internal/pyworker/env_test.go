package pyworker

import (
	"slices"
	"testing"
)

func TestWorkerEnv_KeepsTheBaseAndWhatTheProjectAsksFor(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin", "HOME=/home/x", "LC_ALL=C.UTF-8", "SPARK_USER=ann",
		"AWS_SECRET_ACCESS_KEY=s", "DB_PASSWORD=p", "TAURO_BUCKET=b", "NOEQUALS",
	}
	got := workerEnv(environ, []string{"TAURO_*"}, []string{"PYTHONUNBUFFERED=1"})
	want := []string{"PATH=/usr/bin", "HOME=/home/x", "LC_ALL=C.UTF-8", "SPARK_USER=ann", "TAURO_BUCKET=b", "PYTHONUNBUFFERED=1"}
	if !slices.Equal(got, want) {
		t.Errorf("workerEnv = %v, want %v", got, want)
	}
}
