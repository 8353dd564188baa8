package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

func TestAdmissible_PriorityHoldsAcrossTheQueuesOfEveryReplica(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	run := func(id, key string, prio int, at time.Duration, writes ...string) store.Admission {
		return store.Admission{RunID: id, Pipeline: key, Key: key, MaxActive: 1, Writes: writes, Priority: prio, Created: t0.Add(at)}
	}
	me := run("me", "p", 0, time.Second, "/out/me")
	tests := []struct {
		name      string
		executing []store.Admission
		waiting   []store.Admission
		want      string // a part of the blocker, "" when admitted
	}{
		{"nothing executes or waits", nil, nil, ""},
		{"a run of its pipeline executes", []store.Admission{run("x", "p", 0, 0)}, nil, "already has 1 run(s) executing"},
		{"a run writes under its output", []store.Admission{run("x", "q", 0, 0, "/out")}, nil, "run x is writing /out"},
		{"a higher-priority run of its pipeline waits", nil, []store.Admission{run("w", "p", 5, 2*time.Second)}, "run w is ahead in the queue"},
		{"an older run of its pipeline waits at its priority", nil, []store.Admission{run("w", "p", 0, 0)}, "run w is ahead"},
		{"a younger run of its pipeline waits at its priority", nil, []store.Admission{run("w", "p", 0, 2*time.Second)}, ""},
		{"a lower-priority run waits", nil, []store.Admission{run("w", "p", -1, 0)}, ""},
		{"a higher-priority run of another pipeline waits", nil, []store.Admission{run("w", "q", 5, 0, "/elsewhere")}, ""},
		{"a higher-priority run that cannot start itself waits", []store.Admission{run("x", "q", 0, 0)}, []store.Admission{run("w", "q", 5, 0)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := admissible(me, tt.executing, tt.waiting)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("admissible = %q; want %q", got, tt.want)
			}
		})
	}
}
