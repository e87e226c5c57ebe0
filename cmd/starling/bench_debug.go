package main

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"time"
)

// serveFreeMemory handles POST /debug/free-memory, which `starling bench
// --broker-gc-url` calls before it samples the broker's resident memory: it
// forces a garbage collection and returns as much memory to the operating
// system as possible (runtime/debug.FreeOSMemory), so that the sample
// counts live memory rather than garbage not yet collected. It is served
// with the pprof handlers, on a loopback --http address with --pprof only.
// A collection stops the world for a moment, which is why it is not served
// without --pprof.
func serveFreeMemory(w http.ResponseWriter, _ *http.Request) {
	start := time.Now()
	debug.FreeOSMemory()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "freed in %v\n", time.Since(start).Round(time.Microsecond))
}
