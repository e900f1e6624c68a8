package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// ProbeTimeout bounds one health probe made by HealthcheckMain.
const ProbeTimeout = 3 * time.Second

// Probe asks the /healthz of a service listening on addr (a listen address such as
// ":9090", "0.0.0.0:9090" or "127.0.0.1:8080") and returns nil on 200 OK. An empty or
// wildcard host is probed on the loopback address, as a container healthcheck runs
// inside the container it checks. The images have no shell and no wget: each service
// binary probes itself with `-healthcheck` (see HealthcheckMain).
func Probe(ctx context.Context, addr string) error {
	if addr == "" {
		return errors.New("no address to probe: the operations listener is off (set its address)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("probe address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	client := &http.Client{
		// Never follow a redirect to somewhere else, never use a proxy from the environment.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: status %d", url, res.StatusCode)
	}
	return nil
}

// HealthcheckMain probes addr like Probe, writes the outcome to w and returns the exit
// code for a container healthcheck: 0 healthy, 1 not. A service's main calls it when
// started with -healthcheck, after reading its configuration, so the probe goes to
// the address the running service listens on.
func HealthcheckMain(addr string, w io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
	defer cancel()
	if err := Probe(ctx, addr); err != nil {
		fmt.Fprintln(w, "unhealthy:", err)
		return 1
	}
	fmt.Fprintln(w, "healthy")
	return 0
}
