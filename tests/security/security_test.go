package security_test

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/services/gateway"
)

// TestSecurity runs the security drills against one running product, one after another.
func TestSecurity(t *testing.T) {
	s := newStack(t, stackOptions{gatewayCfg: func(c *gateway.Config) { c.KeepAlive = 2 * time.Second }})
	long := startLongStream(t, s, 35*time.Second)
	t.Run("product works under NATS least privilege", func(t *testing.T) { testProductUnderPermissions(t, s) })
	t.Run("NATS permissions", func(t *testing.T) { testNATSPermissions(t, s) })
	t.Run("MySQL least privilege", func(t *testing.T) { testMySQLLeastPrivilege(t, s) })
	t.Run("JWT tampering", func(t *testing.T) { testJWTTampering(t, s) })
	t.Run("forwarded user token", func(t *testing.T) { testForwardedToken(t, s) })
	t.Run("session revocation", func(t *testing.T) { testSessionRevocation(t, s) })
	t.Run("key rotation", func(t *testing.T) { testKeyRotation(t, s) })
	t.Run("brute force", func(t *testing.T) { testBruteForce(t, s) })
	t.Run("send limit", func(t *testing.T) { testSendLimit(t, s) })
	t.Run("CSRF", func(t *testing.T) { testCSRF(t, s) })
	t.Run("headers and cookies", func(t *testing.T) { testHeaders(t, s) })
	t.Run("IDOR", func(t *testing.T) { testIDOR(t, s) })
	t.Run("bad input", func(t *testing.T) { testBadInput(t, s) })
	// Last: it searches the logs and answers of everything above.
	t.Run("no secrets in logs or answers", func(t *testing.T) { testSecrets(t, s) })
	t.Run("SSE outlives the write timeout", long.check)
}
