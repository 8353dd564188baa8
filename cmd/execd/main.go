// Command execd is the tauro-exec daemon and its command line.
//
//	execd serve --project DIR [--env ENV] [--listen ADDR] [--state DIR] [--tokens FILE] [--tls-cert F --tls-key F]
//	execd token --name NAME [--role ROLE] [--project-role PROJECT=ROLE]... [--append FILE]
//	execd validate PIPELINE | run PIPELINE [--watch] | watch RUN | runs | cancel RUN | stop RUN | repair RUN | pipelines
//
// The client commands talk to a running daemon (--addr, or $EXECD_ADDR),
// with --token (or $TAURO_EXEC_TOKEN) and --tls-ca when it requires them.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `execd: the tauro-exec daemon and its command line

Usage:
  execd serve --project DIR | --projects FILE [--env ENV] [--listen ADDR] [--state DIR] [--spark-remote sc://HOST:PORT]
  execd spark-server [--state DIR]         run only the embedded Spark Connect server
  execd spark-cluster [--workers N]        run a local standalone Spark cluster with a Connect server
  execd token --name N [--role R] [--project-role P=R]...  make a bearer token and its line for --tokens
  execd projects                           list the projects execd serves and your role in each
  execd pipelines [--project P]            list a project's pipelines
  execd validate [PROJECT/]PIPELINE        check a pipeline and print its plan
  execd run [PROJECT/]PIPELINE [--watch]   start a run (--watch follows it, exit 1 if it fails)
  execd watch RUN_ID [--after N]           follow a run's events
  execd runs [--project P] [--pipeline P] [--state S]   list runs, newest first
  execd get RUN_ID                         show a run and its nodes
  execd cancel RUN_ID [--reason TEXT]      cancel a run
  execd stop RUN_ID [--reason TEXT]        end a run's streaming queries after their current micro-batch
  execd repair RUN_ID [--watch]            re-run what did not succeed
  execd experiment start|watch|get|list|cancel   hyperparameter search ("execd experiment" for more)
  execd replicas                           list the replicas sharing the store, their heartbeats and runs

Client commands reach the daemon at --addr (default $EXECD_ADDR or 127.0.0.1:50051),
with --token (default $TAURO_EXEC_TOKEN) and --tls-ca FILE when it requires them.
When execd serves several projects, name one with --project (default
$TAURO_EXEC_PROJECT) or as PROJECT/PIPELINE.
Run "execd COMMAND -h" for a command's flags.
`

// exitError carries a process exit code through the command functions.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmds := map[string]func(context.Context, []string) error{
		"serve":         serve,
		"spark-server":  sparkServer,
		"spark-cluster": sparkCluster,
		"token":         cmdToken,
		"projects":      cmdProjects,
		"pipelines":     cmdPipelines,
		"validate":      cmdValidate,
		"run":           cmdRun,
		"watch":         cmdWatch,
		"runs":          cmdRuns,
		"get":           cmdGet,
		"cancel":        cmdCancel,
		"stop":          cmdStop,
		"repair":        cmdRepair,
		"experiment":    cmdExperiment,
		"replicas":      cmdReplicas,
	}
	name, args := os.Args[1], os.Args[2:]
	if name == "-h" || name == "--help" || name == "help" {
		fmt.Print(usage)
		return
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "execd: unknown command %q\n\n%s", name, usage)
		os.Exit(2)
	}
	if err := cmd(ctx, args); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "execd:", err)
		os.Exit(1)
	}
}
