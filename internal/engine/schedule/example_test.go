package schedule_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/schedule"
)

func Example() {
	tasks := []schedule.Task{
		{Name: "load"},
		{Name: "clean", Deps: []string{"load"}},
		{Name: "report", Deps: []string{"clean"}},
		{Name: "audit", Deps: []string{"load"}},
	}
	runner := schedule.RunnerFunc(func(ctx context.Context, a schedule.Attempt) error {
		if a.Node == "clean" {
			return retry.Permanent(errors.New("KeyError: 'amount'"))
		}
		return nil
	})
	recorder := schedule.RecorderFunc(func(ctx context.Context, t schedule.Transition) error {
		fmt.Println(t.Node, t.State)
		return nil
	})
	res, err := schedule.Run(context.Background(), tasks, runner, recorder, schedule.Options{MaxWorkers: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println("run", res.State())
	// Output:
	// load RUNNING
	// load SUCCEEDED
	// clean RUNNING
	// clean FAILED
	// report SKIPPED
	// audit RUNNING
	// audit SUCCEEDED
	// run FAILED
}
