// Package proc reads a process's CPU time and resident memory from /proc, and the
// machine's CPU counters from /proc/stat, for the load generator's per-service figures.
package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat times (USER_HZ, 100 on every Linux
// architecture Go supports).
const clockTick = 10 * time.Millisecond

// Sample is one reading of a process.
type Sample struct {
	// CPU is user plus system time since the process started.
	CPU time.Duration
	// RSS is the resident set size in bytes.
	RSS uint64
}

// Read samples process pid.
func Read(pid int) (Sample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Sample{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	cpu, err := parseStat(stat)
	if err != nil {
		return Sample{}, fmt.Errorf("parse stat of %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Sample{}, fmt.Errorf("read status of %d: %w", pid, err)
	}
	rss, err := parseRSS(status)
	if err != nil {
		return Sample{}, fmt.Errorf("parse status of %d: %w", pid, err)
	}
	return Sample{CPU: cpu, RSS: rss}, nil
}

// parseStat returns utime+stime from the contents of /proc/<pid>/stat. The command
// name (field 2) is in parentheses and may hold spaces, so fields are counted from
// the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields", len(f)+2)
	}
	ut, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// parseRSS returns VmRSS in bytes from the contents of /proc/<pid>/status.
func parseRSS(b []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS %q", rest)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no VmRSS")
}

// Machine is a reading of the whole machine's CPU counters.
type Machine struct {
	// Busy and Total are all CPUs' non-idle and total time.
	Busy, Total time.Duration
}

// ReadMachine reads the first line of /proc/stat.
func ReadMachine() (Machine, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Machine{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	return parseMachine(b)
}

func parseMachine(b []byte) (Machine, error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return Machine{}, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	var total, idle uint64
	// user nice system idle iowait irq softirq steal (guest times are inside user).
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return Machine{}, fmt.Errorf("/proc/stat field %d: %w", i+1, err)
		}
		total += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return Machine{Busy: time.Duration(total-idle) * clockTick, Total: time.Duration(total) * clockTick}, nil
}
