package main

import (
	"fmt"
	"os"
)

// runBench is replaced by the load generator.
func runBench(args []string) int {
	fmt.Fprintln(os.Stderr, "starling bench: not built yet")
	return 2
}
