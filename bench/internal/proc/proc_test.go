package proc

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "1234 (gateway) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 1000 200", 3 * time.Second, false},
		{"spaces in name", "7 (a b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 1 1", 30 * time.Millisecond, false},
		{"short", "7 (x) R 1 2", 0, true},
		{"no name", "garbage", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parseStat = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseRSS(t *testing.T) {
	got, err := parseRSS([]byte("Name:\tx\nVmPeak:\t 100 kB\nVmRSS:\t   2048 kB\nThreads: 3\n"))
	if err != nil || got != 2048*1024 {
		t.Fatalf("parseRSS = %d, %v; want %d", got, err, 2048*1024)
	}
	if _, err := parseRSS([]byte("Name:\tx\n")); err == nil {
		t.Fatal("parseRSS without VmRSS: want an error")
	}
}

func TestParseMachine(t *testing.T) {
	m, err := parseMachine([]byte("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Busy != 1500*time.Millisecond || m.Total != 10*time.Second {
		t.Fatalf("parseMachine = %+v", m)
	}
}

func TestReadSelf(t *testing.T) {
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS == 0 {
		t.Fatal("RSS of this process is 0")
	}
}
