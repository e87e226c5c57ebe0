package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procSample is the CPU time and resident memory of one process at one moment.
type procSample struct {
	cpu      time.Duration // user plus system time
	rssBytes int64
}

// sampleProcess reads the CPU time (utime+stime in /proc/PID/stat) and the
// resident set size (VmRSS in /proc/PID/status) of process pid. It works on
// Linux only.
func sampleProcess(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	ticks, err := parseStatCPUTicks(string(stat))
	if err != nil {
		return procSample{}, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	rss, err := parseStatusRSS(status)
	if err != nil {
		return procSample{}, fmt.Errorf("read memory of process %d: %w", pid, err)
	}

	return procSample{
		cpu:      time.Duration(ticks) * time.Second / time.Duration(clockTicks()),
		rssBytes: rss,
	}, nil
}

// parseStatCPUTicks returns utime+stime, fields 14 and 15 of a
// /proc/PID/stat line, in clock ticks. The command name in field 2 may
// contain spaces and parentheses, so the fields are counted from the last ')'.
func parseStatCPUTicks(stat string) (uint64, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("malformed stat line %.40q", stat)
	}
	fields := strings.Fields(stat[end+1:])
	// fields[0] is field 3 (state), so field n is fields[n-3].
	if len(fields) < 13 {
		return 0, fmt.Errorf("stat line has %d fields after the command name, expected at least 13", len(fields))
	}
	utime, err := strconv.ParseUint(fields[14-3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseUint(fields[15-3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// parseStatusRSS returns VmRSS from the contents of /proc/PID/status, in bytes.
func parseStatusRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("malformed VmRSS line %q", sc.Text())
		}
		kib, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kib << 10, nil
	}
	return 0, fmt.Errorf("no VmRSS line (a zombie or kernel thread has none)")
}

// atClockTick is the auxiliary vector entry AT_CLKTCK, the kernel's
// USER_HZ: the unit of utime and stime in /proc/PID/stat.
const atClockTick = 17

// clockTicks returns USER_HZ from /proc/self/auxv, or 100, the value of every
// mainstream Linux architecture, when the vector cannot be read.
var clockTicks = sync.OnceValue(func() int64 {
	auxv, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	// 64-bit little-endian (key, value) pairs. Other layouts fall back to 100.
	for i := 0; i+16 <= len(auxv); i += 16 {
		key := binary.LittleEndian.Uint64(auxv[i:])
		value := binary.LittleEndian.Uint64(auxv[i+8:])
		if key == atClockTick && value > 0 && value < 1e6 {
			return int64(value)
		}
		if key == 0 {
			break
		}
	}
	return 100
})

// selfCPU returns the user plus system CPU time of this process so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
