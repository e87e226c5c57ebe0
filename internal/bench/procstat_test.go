package bench

import (
	"os"
	"testing"
)

func TestParseStat_CommandWithSpacesAndParens(t *testing.T) {
	// Fields 14 (utime) and 15 (stime) are 250 and 50.
	line := "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 5000 1000000 200 18446744073709551615\n"
	ticks, err := parseStatCPUTicks(line)
	if err != nil {
		t.Fatal(err)
	}
	if ticks != 300 {
		t.Errorf("ticks %d, expected 300", ticks)
	}
}

func TestParseStat_Malformed(t *testing.T) {
	for _, line := range []string{"", "1234 no parens", "1 (x) S 1 2 3"} {
		if _, err := parseStatCPUTicks(line); err == nil {
			t.Errorf("parseStatCPUTicks(%q) succeeded", line)
		}
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := []byte("Name:\tmosquitto\nVmPeak:\t   20000 kB\nVmRSS:\t    8704 kB\nThreads:\t1\n")
	rss, err := parseStatusRSS(status)
	if err != nil {
		t.Fatal(err)
	}
	if rss != 8704<<10 {
		t.Errorf("rss %d bytes, expected %d", rss, 8704<<10)
	}

	if _, err := parseStatusRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("status without VmRSS accepted")
	}
}

func TestSampleProcess_Self(t *testing.T) {
	busy := 0
	for i := range 50_000_000 {
		busy += i
	}
	s, err := sampleProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.cpu <= 0 {
		t.Errorf("CPU time %v after a busy loop (%d), expected > 0", s.cpu, busy)
	}
	if s.rssBytes < 1<<20 {
		t.Errorf("RSS %d bytes, expected at least 1 MiB for a Go test binary", s.rssBytes)
	}
}

func TestClockTicks(t *testing.T) {
	if hz := clockTicks(); hz < 1 || hz > 10000 {
		t.Errorf("clock ticks per second %d, expected a USER_HZ such as 100", hz)
	}
}
