// Command gen writes the test certificates of package testcerts into a
// folder, for tests outside Go (the Python client's):
//
//	go run ./internal/testcerts/gen DIR
package main

import (
	"fmt"
	"os"

	"github.com/tauro-exec/tauro-exec/internal/testcerts"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen DIR")
		os.Exit(2)
	}
	if _, err := testcerts.Generate(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
