package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/parley-chat/parley/bench/internal/stats"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func trio(s stats.Summary) string {
	return ms(s.P50) + " / " + ms(s.P95) + " / " + ms(s.P99)
}

// markdown renders the report as the tables of docs/benchmarks.md.
func markdown(rep *report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s.  \n", rep.Machine)
	fmt.Fprintf(&b, "Provider: %s.  \n", rep.Provider)
	fmt.Fprintf(&b, "Started %s; took %.0f s. %s  \n", rep.Started.UTC().Format(time.RFC3339), rep.Elapsed, rep.Conditons)
	fmt.Fprintf(&b, "Command: `%s`\n\n", rep.Command)

	b.WriteString("**Latency** (ms; overhead = client-seen time minus the provider's nominal time: " +
		"first token 1 x ttft, full answer ttft + (tokens-1) x gap; floor = the same load sent straight to the provider; " +
		"ratio = platform / floor, on the raw times)\n\n")
	b.WriteString("| users | workers | turns | errors | turns/s (floor) | TTFT overhead p50 / p95 / p99 | floor TTFT overhead p50 / p95 / p99 | TTFT ratio p50 / p99 | full-answer overhead p50 / p95 / p99 | floor full overhead p50 / p95 / p99 | full ratio p50 / p99 |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---|---|---|---|---|---|\n")
	for _, r := range rep.Runs {
		fmt.Fprintf(&b, "| %d | %d | %d | %d | %.1f (%.1f) | %s | %s | %s / %s | %s | %s | %s / %s |\n",
			r.Users, r.Workers, r.Turns, r.Errors, r.TurnsPerS, r.FloorPerS,
			trio(r.TTFTOverhead), trio(r.FloorTTFTOver), ratio(r.TTFT.P50, r.FloorTTFT.P50), ratio(r.TTFT.P99, r.FloorTTFT.P99),
			trio(r.FullOverhead), trio(r.FloorFullOver), ratio(r.Full.P50, r.FloorFull.P50), ratio(r.Full.P99, r.FloorFull.P99))
	}

	b.WriteString("\n**CPU and memory** (CPU ms per chat turn during the turns; services = auth + chat + inference workers + gateway; " +
		"infra = NATS + MariaDB; other = the rest of the machine's busy time (fakehf, the load generator, other work) per turn; " +
		"memory per open stream = gateway RSS delta with one idle open stream per user / users)\n\n")
	b.WriteString("| users | workers | services CPU ms/turn | infra CPU ms/turn | other CPU ms/turn | machine busy | gateway RSS peak MiB | memory per open stream KiB (RSS / Go heap) | goroutines per stream | NATS RSS per stream KiB |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n")
	for _, r := range rep.Runs {
		gwPeak := 0.0
		for _, p := range r.Procs {
			if p.Name == "gateway" {
				gwPeak = p.RSSPeakMiB
			}
		}
		idle, gor, natsKiB := "-", "-", "-"
		if r.Idle != nil {
			idle = fmt.Sprintf("%.1f / %.1f", r.Idle.RSSPerStream/1024, r.Idle.HeapPerStream/1024)
			gor = fmt.Sprintf("%.1f", r.Idle.GoroutinesPerStream)
			natsKiB = fmt.Sprintf("%.1f", r.Idle.NATSRSSPerStream/1024)
		}
		fmt.Fprintf(&b, "| %d | %d | %.2f | %.2f | %.2f | %.0f%% | %.0f | %s | %s | %s |\n",
			r.Users, r.Workers, r.ServicesCPUPerT, r.InfraCPUPerT, r.OtherCPUPerTurn, 100*r.MachineBusy, gwPeak, idle, gor, natsKiB)
	}

	b.WriteString("\n**Per process** (CPU ms per chat turn; RSS at the start of the turns / peak, MiB)\n\n")
	names := procNames(rep)
	b.WriteString("| users | workers |")
	for _, n := range names {
		fmt.Fprintf(&b, " %s |", n)
	}
	b.WriteString("\n|---:|---:|" + strings.Repeat("---|", len(names)) + "\n")
	for _, r := range rep.Runs {
		fmt.Fprintf(&b, "| %d | %d |", r.Users, r.Workers)
		for _, n := range names {
			cell := "-"
			var cpu float64
			var start, peak float64
			found := 0
			for _, p := range r.Procs {
				if procGroup(p.Name) == n {
					cpu += p.CPUPerTurn
					start += p.RSSStartMiB
					peak += p.RSSPeakMiB
					found++
				}
			}
			if found > 0 {
				cell = fmt.Sprintf("%.2f ms, %.0f / %.0f", cpu, start, peak)
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n(inference: all workers together.)\n")

	var errRuns []string
	for _, r := range rep.Runs {
		if r.Errors > 0 || r.ServiceLogErrors > 0 {
			errRuns = append(errRuns, fmt.Sprintf("- %s: %d client errors %v, %d ERROR lines in service logs; e.g. %s",
				r.Name, r.Errors, r.ErrorKinds, r.ServiceLogErrors, strings.Join(r.Examples, " | ")))
		}
	}
	if len(errRuns) > 0 {
		b.WriteString("\n**Errors**\n\n" + strings.Join(errRuns, "\n") + "\n")
	} else {
		b.WriteString("\nErrors: none (client side and ERROR lines in every service's log).\n")
	}
	if l := rep.Login; l != nil {
		b.WriteString("\n**Login throughput** (argon2id " + l.Params + ", hash slots " + l.HashSlots + ")\n\n")
		b.WriteString("| clients | logins | errors | logins/s | latency p50 / p95 / p99 ms | auth CPU ms per login | auth RSS peak MiB |\n|---:|---:|---:|---:|---|---:|---:|\n")
		fmt.Fprintf(&b, "| %d | %d | %d | %.1f | %s | %.0f | %.0f |\n", l.Concurrency, l.Logins, l.Errors, l.PerSecond,
			trio(l.Latency), l.AuthCPUMs, l.AuthRSSPeak)
	}
	return b.String()
}

// procGroup folds the inference workers into one column.
func procGroup(name string) string {
	if strings.HasPrefix(name, "inference-") {
		return "inference"
	}
	return name
}

func procNames(rep *report) []string {
	order := map[string]int{"gateway": 0, "auth": 1, "chat": 2, "inference": 3, "nats-server": 4, "mariadb": 5, "fakehf (provider)": 6, "load generator": 7}
	seen := map[string]bool{}
	var names []string
	for _, r := range rep.Runs {
		for _, p := range r.Procs {
			if g := procGroup(p.Name); !seen[g] {
				seen[g] = true
				names = append(names, g)
			}
		}
	}
	sort.Slice(names, func(i, j int) bool { return order[names[i]] < order[names[j]] })
	return names
}
